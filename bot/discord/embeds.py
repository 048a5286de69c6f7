"""Digest → Discord message payloads (plain JSON dicts), within every Discord limit.

Paper text is untrusted: Markdown is escaped and anything that could read as a mention is
broken with a zero-width space, on top of every message being sent with no allowed mentions.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC

from bot.db.models import MODE_SAVED
from bot.discord.components.layout import message_components
from bot.domain.digest import Digest, DigestEntry, header_line, overflow_line
from bot.domain.matcher import is_like_reason
from bot.domain.paper import Paper
from bot.services.outbox import OutgoingMessage

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
AUTHOR_LIMIT = 256
EMBED_TOTAL_LIMIT = 6000
EMBEDS_PER_MESSAGE = 10
CONTENT_LIMIT = 2000
SUMMARY_CHARS = 350
AUTHORS_CHARS = 300
FOOTER_CHARS = 400
WHY_CHARS = 400
SAVED_HEADER = "📌 Saved to your reading list:"
RECOMMENDED_HEADER = "✨ **Recommended for you**: new papers close to the ones you liked"

ZWSP = "\u200b"
EMBED_COLOUR = 0xFFD21E
_MARKDOWN = re.compile(r"([\\*_~`|>\[\]()#-])")
_MENTION = re.compile(r"@(everyone|here)|<(?=[@#&/:a])", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def defuse_mentions(text: str) -> str:
    """`@everyone`, `@here`, `<@123>`, `<#1>`, `</cmd:1>` can no longer be read as mentions."""
    return _MENTION.sub(lambda m: ("@" + ZWSP + m.group(1)) if m.group(1) else "<" + ZWSP, text)


CODE_TICK = "\u02cb"
"""ˋ (MODIFIER LETTER GRAVE ACCENT): stands in for a backtick inside a code span; it never closes one."""


def code_span(text: str, limit: int = 300) -> str:
    """User text (a query, an option value) shown as typed, inside one inline code span.

    Backticks become ˋ, so nothing in the text can close the span or open another; whitespace
    runs, newlines included, become one space; text past `limit` is cut with "…". Markdown and
    mentions are inert inside a code span (and replies allow no mentions), so nothing else changes.
    """
    flat = _SPACE.sub(" ", text).strip().replace("`", CODE_TICK)
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return f"`{flat or ' '}`"


def escape_text(text: str) -> str:
    """Collapse whitespace, escape Markdown and defuse mentions."""
    flat = _SPACE.sub(" ", text).strip()
    return defuse_mentions(_MARKDOWN.sub(r"\\\1", flat))


def plain_text(text: str) -> str:
    """For places Discord shows without Markdown (footers, author names): flatten and defuse."""
    return defuse_mentions(_SPACE.sub(" ", text).strip())


def cut(text: str, limit: int, *, ellipsis: str = "…") -> str:
    """Shorten at a word boundary (and never inside a Markdown escape) to fit `limit`."""
    if len(text) <= limit:
        return text
    room = limit - len(ellipsis)
    head = text[:room]
    space = head.rfind(" ")
    if space > room * 0.6:
        head = head[:space]
    while head.endswith("\\") and not head.endswith("\\\\"):
        head = head[:-1]
    return head.rstrip() + ellipsis


def authors_line(authors: tuple[str, ...]) -> str:
    named = [name for name in (" ".join(a.split()) for a in authors) if name]
    if not named:
        return "unknown"
    return ", ".join(named[:3]) + (" et al." if len(named) > 3 else "")


def links_line(paper: Paper) -> str:
    links = [f"[arXiv]({paper.abs_url})", f"[PDF]({paper.pdf_url})"]
    if paper.hf_url:
        links.append(f"[HF]({paper.hf_url})")
    if paper.github_url and _safe_url(paper.github_url):
        links.append(f"[Code]({paper.github_url})")
    if paper.project_url and _safe_url(paper.project_url):
        links.append(f"[Project]({paper.project_url})")
    return " · ".join(links)


def _safe_url(url: str) -> bool:
    return url.startswith(("https://", "http://")) and not re.search(r"[\s()<>]", url) and len(url) < 300


def footer_text(entry: DigestEntry) -> str:
    parts: list[str] = []
    for match in entry.matches:
        words = [
            f"`{term}` ({word})" if is_like_reason(term) else f"`{term}` → {word}"
            for term, word in match.words
        ][:3]
        label = f"#{match.watch_id} " + (", ".join(words) if words else match.query)
        parts.append(label)
    text = "matched " + "; ".join(dict.fromkeys(parts)) if parts else "paperwatch"
    if entry.recommended:
        text = "recommended for you, from your 👍 and saved papers"
    return cut(plain_text(text), FOOTER_CHARS)


def paper_embed(entry: DigestEntry, *, summary_chars: int = SUMMARY_CHARS) -> dict[str, object]:
    paper = entry.paper
    summary = paper.ai_summary or paper.abstract or ""
    description = (
        cut(escape_text(summary), min(summary_chars, DESCRIPTION_LIMIT)) if summary_chars > 0 else ""
    )
    embed: dict[str, object] = {
        "title": cut(escape_text(paper.title) or paper.arxiv_id, TITLE_LIMIT),
        "url": paper.url,
        "color": EMBED_COLOUR,
        "fields": [
            {
                "name": "Authors",
                "value": cut(escape_text(authors_line(paper.authors)), AUTHORS_CHARS),
                "inline": False,
            },
            {"name": "Upvotes", "value": f"▲ {paper.upvotes}", "inline": True},
            {
                "name": "Links",
                "value": cut(links_line(paper), FIELD_VALUE_LIMIT, ellipsis=""),
                "inline": True,
            },
        ],
        "footer": {"text": footer_text(entry)},
    }
    if entry.reason:
        fields = embed["fields"]
        assert isinstance(fields, list)
        fields.append({"name": "Why", "value": cut(escape_text(entry.reason), WHY_CHARS), "inline": False})
    if description:
        embed["description"] = description
    if paper.published_at is not None:
        embed["timestamp"] = paper.published_at.astimezone(UTC).isoformat()
    return embed


def embed_size(embed: dict[str, object]) -> int:
    """Characters Discord counts towards the 6,000 per message."""
    total = len(str(embed.get("title", ""))) + len(str(embed.get("description", "")))
    for item in embed.get("fields", []) or []:  # type: ignore[attr-defined]
        total += len(item["name"]) + len(item["value"])
    footer = embed.get("footer")
    if isinstance(footer, dict):
        total += len(str(footer.get("text", "")))
    author = embed.get("author")
    if isinstance(author, dict):
        total += len(str(author.get("name", "")))
    return total


def pack_messages(
    entries: list[DigestEntry],
    first_content: str | None,
    last_line: str | None,
    *,
    target_id: int | None = None,
) -> list[OutgoingMessage]:
    """Split entries into messages of ≤10 embeds and ≤6,000 embed characters.

    Each message gets the "Pick a paper…" select of its papers; the one that says "and N more"
    (`last_line`) gets Next papers too.
    """
    batches: list[list[tuple[int, dict[str, object]]]] = [[]]
    papers: list[list[Paper]] = [[]]
    size = 0
    for entry in entries:
        embed = paper_embed(entry)
        this = embed_size(embed)
        if batches[-1] and (len(batches[-1]) >= EMBEDS_PER_MESSAGE or size + this > EMBED_TOTAL_LIMIT):
            batches.append([])
            papers.append([])
            size = 0
        batches[-1].append((entry.delivery_id or 0, embed))
        papers[-1].append(entry.paper)
        size += this
    messages: list[OutgoingMessage] = []
    for index, batch in enumerate(batches):
        lines = []
        if index == 0 and first_content:
            lines.append(first_content)
        if index == len(batches) - 1 and last_line:
            lines.append(last_line)
        content = cut("\n".join(lines), CONTENT_LIMIT) if lines else None
        delivery_ids = tuple(delivery_id for delivery_id, _ in batch)
        more = index == len(batches) - 1 and bool(last_line) and bool(delivery_ids)
        messages.append(
            OutgoingMessage(
                content=content,
                embeds=[embed for _, embed in batch],
                delivery_ids=delivery_ids,
                components=message_components(
                    target_id, papers[index], next_after=min(delivery_ids) if more else None
                ),
            )
        )
    return [m for m in messages if m.embeds]


def one_message(
    entries: list[DigestEntry], *, target_id: int | None = None, more: bool = False
) -> OutgoingMessage:
    """Entries that were claimed as one message, re-rendered as one message again.

    A re-send must stay one message under its nonce, even if the papers' text grew since:
    summaries are shortened until the embeds fit. Its components are those it was claimed
    with: the select of its papers, and Next papers when it said "and N more" (`more`).
    """
    embeds: list[dict[str, object]] = []
    for chars in (SUMMARY_CHARS, 200, 100, 0):
        embeds = [paper_embed(entry, summary_chars=chars) for entry in entries[:EMBEDS_PER_MESSAGE]]
        if sum(embed_size(embed) for embed in embeds) <= EMBED_TOTAL_LIMIT:
            break
    kept = entries[:EMBEDS_PER_MESSAGE]
    delivery_ids = tuple(entry.delivery_id or 0 for entry in kept)
    return OutgoingMessage(
        content=None,
        embeds=embeds,
        delivery_ids=delivery_ids,
        components=message_components(
            target_id,
            [entry.paper for entry in kept],
            next_after=min(delivery_ids) if more and delivery_ids else None,
        ),
    )


def render(digest: Digest, kind: str) -> list[OutgoingMessage]:
    """The renderer the delivery service uses: a digest, an instant post, or a re-send."""
    if not digest.entries:
        return []
    if kind == "instant":
        names = ", ".join(f"{code_span(q)} (#{w})" for w, q in digest.watches)
        header = cut(defuse_mentions(f"🔔 New for {names}"), CONTENT_LIMIT)
        return pack_messages(digest.entries, header, None, target_id=digest.target_id)
    if kind == MODE_SAVED:
        return pack_messages(digest.entries, SAVED_HEADER, None, target_id=digest.target_id)
    if kind == "resend":
        return [one_message(digest.entries, target_id=digest.target_id, more=digest.overflow > 0)]
    matched = [entry for entry in digest.entries if not entry.recommended]
    recommended = [entry for entry in digest.entries if entry.recommended]
    messages = []
    if matched:
        messages = pack_messages(
            matched,
            defuse_mentions(header_line(replace(digest, entries=matched))),
            overflow_line(digest),
            target_id=digest.target_id,
        )
    if recommended:  # a DM digest's recommendations: their own message(s), after the matches
        messages += pack_messages(recommended, RECOMMENDED_HEADER, None, target_id=digest.target_id)
    return messages
