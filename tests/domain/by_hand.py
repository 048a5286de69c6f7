"""The fixture queries of the matcher tests, written out by hand over the fixture text.

Each query is a plain predicate built from tests/conftest.py's word splitter and plural folder
(docs/queries.md's rules), so expected ids come from the papers' text and not from the matcher
under test.
"""

from __future__ import annotations

from tests.conftest import spec_stem, spec_words


def _fields(p):
    return spec_words(p.title), spec_words(p.abstract)


def term(word, field=None):
    """A bare word, folded: some title or abstract word has the same singular."""
    folded = spec_stem(word)

    def check(p):
        title, abstract = _fields(p)
        words = {"title": title, "abstract": abstract}.get(field, title + abstract)
        return any(spec_stem(w) == folded for w in words)

    return check


def prefix(start, field=None):
    def check(p):
        title, abstract = _fields(p)
        words = {"title": title, "abstract": abstract}.get(field, title + abstract)
        return any(w.startswith(start) for w in words)

    return check


def _adjacent(words, run):
    return any(words[i : i + len(run)] == run for i in range(len(words) - len(run) + 1))


def phrase(*run):
    """Exact adjacent words inside the title or inside the abstract, never across the two."""
    return lambda p: any(_adjacent(words, list(run)) for words in _fields(p))


def author_word(word):
    return lambda p: any(word in spec_words(name) for name in p.authors)


def author_name(*run):
    return lambda p: any(_adjacent(spec_words(name), list(run)) for name in p.authors)


def upvotes(test):
    return lambda p: test(p.upvotes)


def all_of(*checks):
    return lambda p: all(c(p) for c in checks)


def any_of(*checks):
    return lambda p: any(c(p) for c in checks)


def none_of(*checks):
    return lambda p: not any(c(p) for c in checks)


BY_HAND = {
    "diffusion": term("diffusion"),
    "model": term("model"),
    "models": term("model"),
    "language model": all_of(term("language"), term("model")),
    '"language model"': phrase("language", "model"),
    '"language models"': phrase("language", "models"),
    "reinforcement learning": all_of(term("reinforcement"), term("learning")),
    '"reinforcement learning"': phrase("reinforcement", "learning"),
    "llm OR llms": term("llm"),
    "agent* -benchmark": all_of(prefix("agent"), none_of(term("benchmark"))),
    "title:diffusion": term("diffusion", "title"),
    "abstract:video": term("video", "abstract"),
    "video OR image OR audio": any_of(term("video"), term("image"), term("audio")),
    "(video OR image) generation -diffusion": all_of(
        any_of(term("video"), term("image")), term("generation"), none_of(term("diffusion"))
    ),
    "multi-modal": phrase("multi", "modal"),
    "multimodal OR multi-modal": any_of(term("multimodal"), phrase("multi", "modal")),
    "state-of-the-art": phrase("state", "of", "the", "art"),
    "author:wang": author_word("wang"),
    "author:zhang -author:li": all_of(author_word("zhang"), none_of(author_word("li"))),
    'author:"yu qiao"': author_name("yu", "qiao"),
    "upvotes>=20": upvotes(lambda n: n >= 20),
    "upvotes<3 reasoning": all_of(upvotes(lambda n: n < 3), term("reasoning")),
    "upvotes=0": upvotes(lambda n: n == 0),
    "reason* upvotes>10": all_of(prefix("reason"), upvotes(lambda n: n > 10)),
    "benchmark* NOT (video OR image)": all_of(prefix("benchmark"), none_of(term("video"), term("image"))),
    "query": term("query"),
    "data OR dataset* -synthetic": any_of(
        term("data"), all_of(prefix("dataset"), none_of(term("synthetic")))
    ),
    '"large language models" reasoning': all_of(phrase("large", "language", "models"), term("reasoning")),
    "gpt-4": phrase("gpt", "4"),
    "rl OR rlhf": any_of(term("rl"), term("rlhf")),
    "σ": term("σ"),
    "3d": term("3d"),
    "title:bench*": prefix("bench", "title"),
}


def by_hand(text, papers, min_upvotes=None):
    floor = -1 if min_upvotes is None else min_upvotes
    return {p.arxiv_id for p in papers if BY_HAND[text](p) and p.upvotes >= floor}
