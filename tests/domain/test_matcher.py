import re

import pytest

from bot.domain.batch import PaperBatch, iter_bits
from bot.domain.matcher import explain, matches
from bot.domain.paper import Paper
from bot.domain.parser import parse_query
from bot.domain.watchset import WatchSet, match_papers
from tests.domain import hf_fixture_papers
from tests.domain.by_hand import BY_HAND, by_hand


def paper(arxiv_id="2401.00001", title="", abstract="", authors=(), categories=(), upvotes=0):
    return Paper(
        arxiv_id=arxiv_id,
        title=title,
        abstract=abstract,
        authors=tuple(authors),
        categories=tuple(categories),
        upvotes=upvotes,
    )


def matching(text, papers, min_upvotes=None):
    """Ids of the papers `text` matches, after checking that both evaluators agree."""
    query = parse_query(text)
    naive = {p.arxiv_id for p in papers if matches(query, p, min_upvotes)}
    batch = PaperBatch.build(papers)
    found = WatchSet.build([(7, query, min_upvotes)]).match(batch)
    batched = {p.arxiv_id for p in batch.papers_in(found.get(7, 0))}
    assert batched == naive, f"batch {sorted(batched)} != naive {sorted(naive)} for {text!r}"
    return naive


def hits(text, *, title="", abstract="", authors=(), categories=(), upvotes=0, min_upvotes=None):
    """Whether one paper with these fields matches `text`, by both evaluators."""
    one = paper(title=title, abstract=abstract, authors=authors, categories=categories, upvotes=upvotes)
    return bool(matching(text, [one], min_upvotes))


class TestTerms:
    def test_word_in_title_or_abstract(self):
        assert hits("diffusion", title="Diffusion for all")
        assert hits("diffusion", abstract="We use diffusion.")
        assert not hits("diffusion", title="Flow matching", abstract="Nothing else")

    def test_term_is_a_whole_word(self):
        assert not hits("diffusion", title="Superdiffusion everywhere")

    def test_singular_and_plural_fold(self):
        assert hits("model", title="Language Models")
        assert hits("models", title="A language model")
        assert hits("query", abstract="Answering queries fast")
        assert hits("queries", abstract="One query")

    def test_status_is_not_a_plural(self):
        assert not hits("statu", title="Status report")
        assert hits("status", title="Status report")

    def test_case_and_nfkc_insensitive(self):
        assert hits("gpu", title="Fast ＧＰＵ kernels")
        assert hits("GPU", title="fast gpu kernels")

    def test_accents_are_not_folded(self):
        assert hits("café", title="Café culture")
        assert not hits("cafe", title="Café culture")
        assert not hits("café", title="Cafe culture")

    def test_term_does_not_look_at_authors(self):
        assert not hits("lecun", title="Energy models", authors=["Yann LeCun"])

    def test_field_terms(self):
        assert hits("title:diffusion", title="Diffusion", abstract="")
        assert not hits("title:diffusion", title="Flows", abstract="diffusion")
        assert hits("abstract:diffusion", title="Flows", abstract="diffusion")
        assert not hits("abstract:diffusion", title="Diffusion", abstract="flows")
        assert hits("title:models", title="One model")


class TestPrefixes:
    def test_any_word_starting_with_the_prefix(self):
        assert hits("distill*", abstract="We distilled it")
        assert hits("distill*", title="Distillation")
        assert hits("distill*", title="distill")
        assert not hits("distill*", title="Undistilled")

    def test_prefixes_are_not_folded(self):
        assert not hits("models*", title="One model")

    def test_field_prefix(self):
        assert hits("author:lec*", authors=["Yann LeCun"])
        assert not hits("title:distill*", abstract="distillation")


class TestPhrases:
    def test_adjacent_words_in_order(self):
        assert hits('"knowledge distillation"', abstract="Knowledge distillation works.")
        assert hits('"knowledge distillation"', abstract="Knowledge-Distillation works.")
        assert not hits('"knowledge distillation"', abstract="Distillation of knowledge.")
        assert not hits('"knowledge distillation"', abstract="Knowledge and distillation.")

    def test_phrases_are_exact_words(self):
        assert not hits('"knowledge distillation"', abstract="knowledge distillations")
        assert not hits('"models"', title="A model")
        assert hits('"models"', title="Two models")

    def test_unquoted_word_with_hyphen_is_a_phrase(self):
        assert hits("soft-nms", title="Soft-NMS improved")
        assert hits("soft-nms", title="Soft NMS improved")
        assert not hits("soft-nms", title="Soft and NMS")
        assert hits("gpt-4", abstract="We evaluate GPT-4 and GPT 4.")
        assert not hits("gpt-4", abstract="We evaluate GPT-4o.")

    def test_phrase_does_not_cross_from_title_into_abstract(self):
        title, abstract = "Scaling diffusion", "models are trained"
        assert not hits('"diffusion models"', title=title, abstract=abstract)
        assert hits('"diffusion models"', title="Diffusion models", abstract="x")
        assert hits('"diffusion models"', title="x", abstract="Diffusion models")

    def test_phrase_can_repeat_its_first_word(self):
        assert hits('"deep learning"', abstract="deep deep learning")

    def test_field_phrase(self):
        assert hits('title:"diffusion models"', title="Diffusion models")
        assert not hits('title:"diffusion models"', abstract="Diffusion models")
        assert hits('abstract:"diffusion models"', abstract="Diffusion models")


class TestAuthors:
    def test_any_author_name_word(self):
        authors = ["Yann LeCun", "Geoffrey Hinton"]
        assert hits("author:lecun", authors=authors)
        assert hits("author:geoffrey", authors=authors)
        assert not hits("author:bengio", authors=authors)

    def test_author_terms_are_not_folded(self):
        assert not hits("author:lecuns", authors=["Yann LeCun"])
        assert not hits("author:smiths", authors=["Ann Smith"])
        assert hits("author:smiths", authors=["Ann Smiths"])

    def test_author_phrase_matches_one_author_full_name(self):
        assert hits('author:"yann lecun"', authors=["Yann LeCun"])
        assert hits('author:"Yann LeCun"', authors=["Léon Bottou", "Yann LeCun"])
        assert not hits('author:"yann lecun"', authors=["LeCun Yann"])

    def test_author_phrase_stays_within_one_author(self):
        assert not hits('author:"yann lecun"', authors=["Anna Yann", "Lecun Smith"])

    def test_author_does_not_look_at_title(self):
        assert not hits("author:lecun", title="What LeCun said")

    def test_author_accents_are_kept(self):
        assert hits("author:ramírez", authors=["Ana Ramírez"])
        assert not hits("author:ramirez", authors=["Ana Ramírez"])


class TestBooleans:
    def test_and(self):
        assert hits("a b", title="a b")
        assert hits("a AND b", title="b then a")
        assert not hits("a b", title="a only")

    def test_or_binds_looser_than_and(self):
        # a OR b c is a OR (b AND c), not (a OR b) AND c.
        assert hits("a OR b c", title="a")
        assert not hits("a OR b c", title="b")
        assert hits("a OR b c", title="b c")
        assert not hits("(a OR b) c", title="a")

    def test_not(self):
        assert hits("b -a", title="b")
        assert not hits("b -a", title="a b")
        assert hits("-a b", title="b")
        assert not hits("b NOT a", title="b a")

    def test_not_of_a_group(self):
        assert hits("c -(a b)", title="c a")
        assert not hits("c -(a b)", title="c a b")

    def test_lower_case_or_is_a_word(self):
        assert not hits("diffusion or video", title="diffusion video")
        assert hits("diffusion or video", title="diffusion or video")
        assert not hits("diffusion or video", title="diffusion")


class TestCategories:
    def test_case_insensitive(self):
        assert hits("category:cs.CL", categories=["cs.CL"])
        assert hits("category:CS.cl", categories=["cs.LG", "cs.CL"])
        assert not hits("category:cs.CL", categories=["cs.CV"])

    def test_prefix(self):
        assert hits("category:cs.*", categories=["cs.LG"])
        assert hits("category:CS.*", categories=["stat.ML", "cs.LG"])
        assert not hits("category:cs.*", categories=["math.CO"])
        assert not hits("category:cs.*", categories=["physics.cs-ph"])

    def test_exact_category_is_whole(self):
        assert not hits("category:cs.C", categories=["cs.CL"])

    def test_no_known_categories_matches_no_category_term(self):
        assert not hits("category:cs.CL", categories=[])
        assert not hits("category:cs.*", categories=[])

    def test_negated_category_on_a_paper_without_categories(self):
        assert hits("diffusion -category:cs.CV", title="Diffusion", categories=[])


class TestUpvotes:
    @pytest.mark.parametrize(
        ("text", "upvotes", "expected"),
        [
            ("upvotes>=50", 50, True),
            ("upvotes>=50", 49, False),
            ("upvotes>50", 50, False),
            ("upvotes>50", 51, True),
            ("upvotes<=3", 3, True),
            ("upvotes<=3", 4, False),
            ("upvotes<3", 3, False),
            ("upvotes<3", 2, True),
            ("upvotes=7", 7, True),
            ("upvotes=7", 8, False),
            ("upvotes=7", 6, False),
        ],
    )
    def test_comparisons(self, text, upvotes, expected):
        assert hits(text, upvotes=upvotes) is expected

    def test_paper_without_hf_upvotes_has_zero(self):
        assert hits("upvotes=0", title="x")
        assert hits("upvotes<1", title="x")
        assert not hits("upvotes>=1", title="x")

    def test_upvotes_alone_is_a_watch(self):
        batch_of_three = [paper(f"2401.0000{n}", upvotes=n * 30) for n in range(3)]
        assert matching("upvotes>=50", batch_of_three) == {"2401.00002"}

    def test_min_upvotes_adds_a_threshold(self):
        assert hits("diffusion", title="Diffusion", upvotes=10, min_upvotes=10)
        assert not hits("diffusion", title="Diffusion", upvotes=9, min_upvotes=10)
        assert hits("diffusion", title="Diffusion", upvotes=0, min_upvotes=0)


class TestBatch:
    def test_each_watch_gets_its_papers(self):
        papers = [
            paper("2401.00001", title="Diffusion models"),
            paper("2401.00002", title="Language models"),
            paper("2401.00003", title="Video diffusion", upvotes=40),
        ]
        watches = [
            (1, parse_query("diffusion"), None),
            (2, parse_query("model"), None),
            (3, parse_query("diffusion"), 20),
            (4, parse_query("robotics"), None),
            (5, parse_query("diffusion -video"), None),
            (6, parse_query("diffusion"), None),
        ]
        found = match_papers(watches, papers)
        ids = {watch: [p.arxiv_id for p in found_papers] for watch, found_papers in found.items()}
        assert ids == {
            1: ["2401.00001", "2401.00003"],
            2: ["2401.00001", "2401.00002"],
            3: ["2401.00003"],
            5: ["2401.00001"],
            6: ["2401.00001", "2401.00003"],
        }

    def test_bitmaps_use_paper_positions(self):
        papers = [paper(f"2401.{n:05d}", title="x" if n % 3 else "needle") for n in range(10)]
        batch = PaperBatch.build(papers)
        found = WatchSet.build([(1, parse_query("needle"), None)]).match(batch)
        assert found == {1: 0b1001001001}

    def test_same_leaf_in_different_spellings_is_evaluated_once(self):
        watch_set = WatchSet.build(
            [
                (1, parse_query("queries"), None),
                (2, parse_query("query"), None),
                (3, parse_query('"query"'), None),
            ]
        )
        assert watch_set.leaf_count == 2
        assert len(watch_set) == 3

    def test_empty_batch(self):
        batch = PaperBatch.build([])
        assert len(batch) == 0
        assert WatchSet.build([(1, parse_query("a"), None)]).match(batch) == {}

    def test_one_watch_set_serves_several_batches(self):
        watch_set = WatchSet.build([(1, parse_query("diffusion"), None)])
        first = PaperBatch.build([paper(title="Diffusion")])
        second = PaperBatch.build([paper(title="Flows"), paper(title="Diffusion")])
        assert watch_set.match(first) == {1: 0b1}
        assert watch_set.match(second) == {1: 0b10}


class TestIterBits:
    def test_set_bits_lowest_first(self):
        assert list(iter_bits(0b101001)) == [0, 3, 5]

    def test_zero(self):
        assert list(iter_bits(0)) == []

    def test_large(self):
        assert list(iter_bits((1 << 5000) | 1 | (1 << 64))) == [0, 64, 5000]


class TestExplain:
    def test_names_each_positive_leaf_and_the_words_it_matched(self):
        one = paper(
            title="Knowledge Distillation for Small Models",
            abstract="We distilled a large model; distillation helps.",
            authors=["Yann LeCun"],
            categories=["cs.CL", "cs.LG"],
            upvotes=12,
        )
        query = parse_query(
            'distill* "knowledge distillation" model author:lecun category:cs.* upvotes>=5 -video'
        )
        assert explain(query, one) == [
            ("distill*", "distillation, distilled"),
            ('"knowledge distillation"', "knowledge distillation"),
            ("model", "models, model"),
            ("author:lecun", "Yann LeCun"),
            ("category:cs.*", "cs.CL, cs.LG"),
            ("upvotes>=5", "12 upvotes"),
        ]

    def test_leaves_that_did_not_match_are_left_out(self):
        query = parse_query("diffusion OR flow")
        assert explain(query, paper(title="Flow matching")) == [("flow", "flow")]

    def test_field_restriction_is_respected(self):
        query = parse_query("title:model OR abstract:model")
        assert explain(query, paper(title="x", abstract="Models")) == [("abstract:model", "models")]

    def test_author_phrase_names_the_author(self):
        query = parse_query('author:"yann lecun"')
        explained = explain(query, paper(authors=["Léon Bottou", "Yann LeCun"]))
        assert explained == [('author:"yann lecun"', "Yann LeCun")]


FIXTURE_QUERIES = list(BY_HAND)


class TestRealPapers:
    @pytest.mark.parametrize("text", FIXTURE_QUERIES)
    def test_fixture_query_matches_the_papers_worked_out_by_hand(self, text):
        papers = list(hf_fixture_papers())
        for min_upvotes in (None, 5):
            assert matching(text, papers, min_upvotes) == by_hand(text, papers, min_upvotes)

    def test_most_fixture_queries_match_something_and_none_matches_everything(self):
        papers = list(hf_fixture_papers())
        sizes = {text: len(by_hand(text, papers)) for text in FIXTURE_QUERIES}
        assert all(size < len(papers) for size in sizes.values()), sizes
        empty = [text for text, size in sizes.items() if size == 0]
        assert len(empty) <= 3, empty

    def test_all_queries_at_once_agree_with_one_at_a_time(self):
        papers = list(hf_fixture_papers())
        queries = [parse_query(text) for text in FIXTURE_QUERIES]
        batch = PaperBatch.build(papers)
        found = WatchSet.build([(n, q, None) for n, q in enumerate(queries)]).match(batch)
        for n, text in enumerate(FIXTURE_QUERIES):
            assert {p.arxiv_id for p in batch.papers_in(found.get(n, 0))} == by_hand(text, papers)

    def test_title_term_against_a_plain_regex(self):
        papers = list(hf_fixture_papers())
        pattern = re.compile(r"(?<![^\W_])diffusions?(?![^\W_])", re.IGNORECASE)
        expected = {p.arxiv_id for p in papers if pattern.search(p.title)}
        assert expected
        assert matching("title:diffusion", papers) == expected

    def test_upvotes_against_the_fixture_numbers(self):
        papers = list(hf_fixture_papers())
        expected = {p.arxiv_id for p in papers if p.upvotes >= 20}
        assert expected
        assert matching("upvotes>=20", papers) == expected

    def test_author_phrase_against_the_fixture_names(self):
        papers = list(hf_fixture_papers())
        expected = {p.arxiv_id for p in papers if any(a.lower() == "yu qiao" for a in p.authors)}
        assert expected
        assert matching('author:"yu qiao"', papers) == expected
