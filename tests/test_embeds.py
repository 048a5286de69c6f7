"""Rendering digests into Discord message payloads: limits, escaping, mentions, links, footers.

The limits are Discord's documented ones: title 256, description 4096, field name 256,
field value 1024, footer 2048, author name 256, 25 fields, 6000 characters over all the
embeds of a message, 10 embeds per message, message content 2000.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.discord.embeds import EMBEDS_PER_MESSAGE, render
from bot.domain.digest import DigestEntry, Match, compose_digest
from bot.domain.paper import ARXIV, HF, Paper
from bot.services.outbox import OutgoingMessage
from tests.conftest import HF_DIR, HF_OVERLAP, RSS_ALL, load_feed

MARKDOWN_SPECIALS = set("*_~`|[]")
MENTION = re.compile(r"@(everyone|here)|<@", re.IGNORECASE)


def embed_chars(embed: dict[str, object]) -> int:
    """Characters Discord counts towards a message's 6000, computed from the payload."""
    total = len(str(embed.get("title", ""))) + len(str(embed.get("description", "")))
    for item in embed.get("fields", []):  # type: ignore[attr-defined]
        total += len(item["name"]) + len(item["value"])
    total += len(str((embed.get("footer") or {}).get("text", "")))  # type: ignore[attr-defined]
    total += len(str((embed.get("author") or {}).get("name", "")))  # type: ignore[attr-defined]
    return total


def texts_of(message: OutgoingMessage) -> list[str]:
    out = [message.content or ""]
    for embed in message.embeds:
        out += [str(embed.get("title", "")), str(embed.get("description", ""))]
        for item in embed.get("fields", []):  # type: ignore[attr-defined]
            out += [item["name"], item["value"]]
        out.append(str((embed.get("footer") or {}).get("text", "")))  # type: ignore[attr-defined]
        out.append(str((embed.get("author") or {}).get("name", "")))  # type: ignore[attr-defined]
    return out


def assert_within_discord_limits(messages: list[OutgoingMessage]) -> None:
    for message in messages:
        assert 1 <= len(message.embeds) <= 10
        assert sum(embed_chars(e) for e in message.embeds) <= 6000
        assert message.content is None or len(message.content) <= 2000
        assert len(message.delivery_ids) == len(message.embeds)
        for embed in message.embeds:
            assert 1 <= len(str(embed["title"])) <= 256
            assert len(str(embed.get("description", ""))) <= 4096
            assert len(embed["fields"]) <= 25  # type: ignore[arg-type]
            for item in embed["fields"]:  # type: ignore[attr-defined]
                assert 1 <= len(item["name"]) <= 256
                assert 1 <= len(item["value"]) <= 1024
            assert len(str(embed["footer"]["text"])) <= 2048  # type: ignore[index]
            assert len(str((embed.get("author") or {}).get("name", ""))) <= 256  # type: ignore[attr-defined]
        for text in texts_of(message):
            assert not MENTION.search(text), text


def unescaped_markdown(text: str) -> list[str]:
    """Markdown control characters in `text` that are not preceded by an escaping backslash."""
    found, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char in MARKDOWN_SPECIALS:
            found.append(char)
        index += 1
    return found


def one_entry(paper: Paper, *matches: Match, delivery_id: int = 1) -> DigestEntry:
    return DigestEntry(paper=paper, matches=matches or (Match(1, "q"),), delivery_id=delivery_id)


def render_one(paper: Paper, *matches: Match) -> dict[str, object]:
    messages = render(compose_digest([one_entry(paper, *matches)], 25), "digest")
    assert len(messages) == 1
    assert len(messages[0].embeds) == 1
    return messages[0].embeds[0]


def sample_paper(**fields: object) -> Paper:
    base = Paper(
        arxiv_id="2411.00001",
        title="A title",
        abstract="An abstract.",
        authors=("Ada Lovelace",),
        sources=frozenset({ARXIV}),
        published_at=datetime(2024, 11, 27, tzinfo=UTC),
    )
    return replace(base, **fields)  # type: ignore[arg-type]


# --- one embed -------------------------------------------------------------------------------


def test_title_links_to_hf_page_for_hf_papers_and_arxiv_otherwise() -> None:
    hf = load_feed(HF_OVERLAP).papers
    rss = load_feed(RSS_ALL).papers
    rss_only = next(p for p in rss if p.arxiv_id not in {h.arxiv_id for h in hf})
    assert render_one(hf[0])["url"] == f"https://huggingface.co/papers/{hf[0].arxiv_id}"
    assert render_one(rss_only)["url"] == f"https://arxiv.org/abs/{rss_only.arxiv_id}"
    merged = next(p for p in rss if p.arxiv_id == hf[0].arxiv_id).merged_with(hf[0])
    assert render_one(merged)["url"] == f"https://huggingface.co/papers/{hf[0].arxiv_id}"


def test_links_field_has_arxiv_pdf_and_hf_and_code() -> None:
    paper = next(p for p in load_feed(HF_DIR / "2025-07-15.json").papers if p.github_url)
    links = next(f for f in render_one(paper)["fields"] if f["name"] == "Links")["value"]  # type: ignore[attr-defined]
    assert f"https://arxiv.org/abs/{paper.arxiv_id}" in links
    assert f"https://arxiv.org/pdf/{paper.arxiv_id}" in links
    assert f"https://huggingface.co/papers/{paper.arxiv_id}" in links
    assert paper.github_url in links


def authors_value(paper: Paper) -> str:
    return next(f for f in render_one(paper)["fields"] if f["name"] == "Authors")["value"]  # type: ignore[attr-defined]


def test_authors_et_al_after_three() -> None:
    three = sample_paper(authors=("Ada Lovelace", "Alan Turing", "Grace Hopper"))
    four = sample_paper(authors=("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"))
    assert authors_value(three) == "Ada Lovelace, Alan Turing, Grace Hopper"
    assert authors_value(four) == "Ada Lovelace, Alan Turing, Grace Hopper et al."


def test_real_358_author_paper() -> None:
    paper = next(p for p in load_feed(HF_DIR / "2025-12-25.json").papers if p.arxiv_id == "2512.20856")
    assert len(paper.authors) == 358
    value = authors_value(paper)
    assert value.endswith("et al.")
    assert value.count(",") == 2


def test_upvotes_are_shown() -> None:
    fields = render_one(sample_paper(upvotes=42))["fields"]
    assert any("42" in f["value"] for f in fields if f["name"] == "Upvotes")  # type: ignore[attr-defined]


def test_footer_names_the_watch_and_the_words_that_matched() -> None:
    paper = sample_paper(title="Distillation for everyone")
    footer = render_one(paper, Match(7, "distill*", (("distill*", "distillation"),)))["footer"]["text"]  # type: ignore[index]
    assert footer.startswith("matched")
    assert "#7" in footer
    assert "`distill*` → distillation" in footer


def test_footer_with_two_watches_names_both() -> None:
    paper = sample_paper()
    footer = render_one(
        paper,
        Match(3, "diffusion", (("diffusion", "diffusion"),)),
        Match(9, '"video generation"', (('"video generation"', "video generation"),)),
    )["footer"]["text"]  # type: ignore[index]
    assert "#3" in footer
    assert "#9" in footer


def test_markdown_in_title_abstract_and_authors_is_escaped() -> None:
    paper = sample_paper(
        title="**Bold** claims, _all_ the ~~way~~ `down` ||spoiler|| [link](https://evil.example)",
        abstract="We *really* mean it __twice__ and `code`.",
        authors=("A_B_C", "D*E*F"),
    )
    embed = render_one(paper)
    assert unescaped_markdown(str(embed["title"])) == []
    assert unescaped_markdown(str(embed["description"])) == []
    assert unescaped_markdown(authors_value(paper)) == []
    assert "Bold" in str(embed["title"])
    assert "really" in str(embed["description"])


def test_mentions_in_paper_text_are_defused() -> None:
    paper = sample_paper(
        title="Attention @everyone: <@123456789> and <@&987> @here",
        abstract="Ping @everyone and @HERE and <@!42>.",
        authors=("@everyone", "<@1>"),
        ai_summary=None,
    )
    messages = render(
        compose_digest([one_entry(paper, Match(2, "@everyone", (("@everyone", "everyone"),)))], 25), "digest"
    )
    for message in messages:
        for text in texts_of(message):
            assert not MENTION.search(text), text
    assert "everyone" in str(messages[0].embeds[0]["title"])  # defused, not deleted


def test_long_title_and_abstract_are_cut() -> None:
    paper = sample_paper(title="word " * 200, abstract="sentence " * 2000, ai_summary=None)
    embed = render_one(paper)
    assert len(str(embed["title"])) <= 256
    assert str(embed["title"]).endswith("…")
    assert len(str(embed["description"])) <= 4096


def test_ai_summary_or_abstract_is_the_description() -> None:
    with_summary = next(p for p in load_feed(HF_DIR / "2025-07-15.json").papers if p.ai_summary)
    description = str(render_one(with_summary)["description"])
    assert description.split()[0].strip("\\") in with_summary.ai_summary  # type: ignore[operator]
    without = sample_paper(abstract="Plain abstract text here.", ai_summary=None)
    assert str(render_one(without)["description"]).startswith("Plain abstract text here")


def test_blank_title_falls_back_to_the_id() -> None:
    assert render_one(sample_paper(title="   "))["title"] == "2411.00001"


def test_blank_author_names_never_give_an_empty_field() -> None:
    value = authors_value(sample_paper(authors=("  ",)))
    assert value.strip()


# --- messages --------------------------------------------------------------------------------


def test_real_feeds_render_within_limits_header_first() -> None:
    for name in ("2024-06-21.json", "2025-09-30.json", "2025-12-25.json", "2026-03-10.json"):
        papers = load_feed(HF_DIR / name).papers
        entries = [one_entry(p, Match(5, "upvotes>=0"), delivery_id=i + 1) for i, p in enumerate(papers)]
        digest = compose_digest(entries, 25)
        messages = render(digest, "digest")
        assert_within_discord_limits(messages)
        assert sum(len(m.embeds) for m in messages) == min(25, len(papers))
        assert messages[0].content is not None
        assert f"{min(25, len(papers))} new papers" in messages[0].content
        assert all(m.content is None for m in messages[1:-1])
        posted = [d for m in messages for d in m.delivery_ids]
        assert sorted(posted) == sorted(e.delivery_id for e in digest.entries)
        if len(papers) > 25:
            assert f"and {len(papers) - 25} more" in (messages[-1].content or "")


def test_rss_papers_render_within_limits() -> None:
    papers = load_feed(RSS_ALL).papers[:200]
    entries = [one_entry(p, delivery_id=i + 1) for i, p in enumerate(papers)]
    messages = render(compose_digest(entries, 200), "digest")
    assert_within_discord_limits(messages)
    assert sum(len(m.embeds) for m in messages) == 200
    assert len(messages) >= 20


def test_instant_and_resend_headers() -> None:
    papers = load_feed(HF_OVERLAP).papers[:3]
    digest = compose_digest(
        [one_entry(p, Match(4, "diffusion"), delivery_id=i + 1) for i, p in enumerate(papers)], 25
    )
    instant = render(digest, "instant")
    assert instant[0].content is not None
    assert "`diffusion` (#4)" in instant[0].content
    resend = render(digest, "resend")
    assert all(m.content is None for m in resend)
    assert [d for m in resend for d in m.delivery_ids] == [d for m in instant for d in m.delivery_ids]


def test_nothing_to_render() -> None:
    assert render(compose_digest([], 25), "digest") == []


def test_large_embeds_are_split_by_the_6000_limit() -> None:
    heavy = [
        sample_paper(
            arxiv_id=f"2411.{i:05d}",
            title="T" * 400,
            abstract="a " * 3000,
            authors=tuple("N" * 600 for _ in range(5)),
        )
        for i in range(10)
    ]
    long_words = tuple((f"term{i}", "w" * 900) for i in range(3))
    entries = [one_entry(p, Match(i, "q" * 300, long_words), delivery_id=i + 1) for i, p in enumerate(heavy)]
    messages = render(compose_digest(entries, 25), "digest")
    assert_within_discord_limits(messages)
    assert len(messages) > 1  # ten of these do not fit in one message
    assert sum(len(m.embeds) for m in messages) == 10


# --- any text at all -------------------------------------------------------------------------

any_text = st.text(max_size=400) | st.text(alphabet="@everyone<>*_`~|#-\\ \n", max_size=400)
long_text = any_text | st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=5000)


@st.composite
def papers(draw: st.DrawFn, index: int) -> Paper:
    return Paper(
        arxiv_id=f"2411.{index:05d}",
        title=draw(long_text),
        abstract=draw(long_text),
        authors=tuple(draw(st.lists(any_text.filter(str.strip), max_size=12))),
        sources=frozenset(draw(st.sets(st.sampled_from([HF, ARXIV]), min_size=1))),
        upvotes=draw(st.integers(min_value=0, max_value=10**6)),
        ai_summary=draw(st.none() | any_text),
        published_at=draw(st.none() | st.just(datetime(2024, 11, 28, tzinfo=UTC))),
    )


@st.composite
def digests_and_kinds(draw: st.DrawFn) -> tuple[list[DigestEntry], int, str]:
    kind = draw(st.sampled_from(["digest", "instant", "resend"]))
    # a re-send is one claimed message again: at most one message's papers
    count = draw(st.integers(min_value=1, max_value=EMBEDS_PER_MESSAGE if kind == "resend" else 26))
    entries = []
    for index in range(count):
        matches = tuple(
            Match(
                watch_id=draw(st.integers(min_value=1, max_value=10**6)),
                query=draw(any_text),
                words=tuple(draw(st.lists(st.tuples(any_text, any_text), max_size=4))),
            )
            for _ in range(draw(st.integers(min_value=1, max_value=3)))
        )
        entries.append(DigestEntry(paper=draw(papers(index)), matches=matches, delivery_id=index + 1))
    return entries, draw(st.integers(min_value=1, max_value=40)), kind


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(digests_and_kinds())
def test_any_text_renders_within_every_limit_and_pings_nobody(
    case: tuple[list[DigestEntry], int, str],
) -> None:
    entries, cap, kind = case
    digest = compose_digest(entries, cap)
    messages = render(digest, kind)
    assert_within_discord_limits(messages)
    posted = [d for m in messages for d in m.delivery_ids]
    assert sorted(posted) == sorted(e.delivery_id for e in digest.entries)  # each paper exactly once
    for message in messages:
        for embed in message.embeds:
            assert unescaped_markdown(str(embed["title"])) == [] or embed["title"] in {
                e.paper.arxiv_id for e in entries
            }
            assert unescaped_markdown(str(embed.get("description", ""))) == []
