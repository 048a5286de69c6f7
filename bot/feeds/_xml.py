"""Safe XML parsing and text clean-up shared by the feed parsers."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from pylatexenc.latex2text import LatexNodes2Text

_WHITESPACE = re.compile(r"\s+")
_XML_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>")
_UNESCAPED_TEX_SPECIALS = re.compile(r"(?<!\\)([%&#])")
_LATEX = LatexNodes2Text()


class BadEntryError(Exception):
    """One feed entry cannot become a paper; carries the entry's id (or position) and why."""

    def __init__(self, entry_id: str, reason: str) -> None:
        super().__init__(reason)
        self.entry_id = entry_id
        self.reason = reason


class XmlRefusedError(Exception):
    """The document is not well-formed XML or uses a forbidden construct (DTD, entities)."""


def collapse_whitespace(text: str) -> str:
    """Join hard-wrapped lines and runs of spaces into single spaces."""
    return _WHITESPACE.sub(" ", text).strip()


def parse_xml(content: bytes) -> Element:
    """Parse untrusted XML, refusing DTDs, entity declarations and external references.

    Whitespace before the XML declaration, a common server slip, is ignored.
    """
    try:
        root: Element = fromstring(
            content.lstrip(b" \t\r\n"), forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise XmlRefusedError(f"refused unsafe XML ({type(exc).__name__})") from exc
    except ParseError as exc:
        raise XmlRefusedError(f"not well-formed XML ({exc})") from exc
    except (ValueError, LookupError) as exc:
        raise XmlRefusedError(f"unreadable XML ({exc})") from exc
    return root


def is_unsafe_xml(exc: XmlRefusedError) -> bool:
    """True when the document was refused for a DTD or entities, not for being broken."""
    return isinstance(exc.__cause__, DefusedXmlException)


@dataclass(frozen=True, slots=True)
class RecoveredElement:
    """One repeated element cut out of a broken document: parsed, or why it could not be."""

    index: int
    element: Element | None
    raw_id: str | None
    problem: str | None


def recover_elements(
    content: bytes, root_tag: bytes, item_tag: bytes, id_tag: bytes
) -> Iterator[RecoveredElement]:
    """Parse each `<item_tag>` of a document that does not parse as a whole, one at a time.

    Each element is wrapped in a copy of the root start tag (so namespaces still resolve)
    and parsed on its own; an element that still fails is reported with the text of its
    `<id_tag>` when one can be read, so the rest of the feed survives one broken entry.
    A trailing element cut off before its end tag is reported as truncated.
    """
    declaration = _XML_DECLARATION.match(content)
    prologue = declaration.group(0).lstrip() if declaration else b""
    root_start = re.search(rb"<" + root_tag + rb"\b[^>]*>", content)
    if root_start is None:
        return
    opening = prologue + root_start.group(0)
    closing = b"</" + root_tag + b">"
    item_start = re.compile(rb"<" + item_tag + rb"[\s>]")
    item_end = b"</" + item_tag + b">"
    id_pattern = re.compile(rb"<" + id_tag + rb"\b[^>]*>([^<]{1,200})</" + id_tag + rb">")
    position = root_start.end()
    index = 0
    while (found := item_start.search(content, position)) is not None:
        end = content.find(item_end, found.start())
        if end < 0:
            raw_id = _first_text(id_pattern, content[found.start() : found.start() + 10_000])
            yield RecoveredElement(index, None, raw_id, "truncated")
            return
        position = end + len(item_end)
        chunk = content[found.start() : position]
        raw_id = _first_text(id_pattern, chunk)
        try:
            wrapped = parse_xml(opening + chunk + closing)
        except XmlRefusedError as exc:
            yield RecoveredElement(index, None, raw_id, str(exc))
        else:
            element = next(iter(wrapped), None)
            problem = None if element is not None else "empty element"
            yield RecoveredElement(index, element, raw_id, problem)
        index += 1


def _first_text(pattern: re.Pattern[bytes], chunk: bytes) -> str | None:
    found = pattern.search(chunk)
    if found is None:
        return None
    text = collapse_whitespace(found.group(1).decode("utf-8", errors="replace"))
    return text or None


def child_text(element: Element, tag: str) -> str:
    """The whitespace-collapsed text of the first `tag` child, or "" when there is none."""
    child = element.find(tag)
    if child is None:
        return ""
    return collapse_whitespace("".join(child.itertext()))


def decode_tex_name(name: str) -> str:
    """Turn arXiv's TeX accent escapes in a person's name into Unicode (`R\\'emy` → `Rémy`)."""
    if "\\" not in name and "{" not in name and "~" not in name:
        return collapse_whitespace(name)
    try:
        text = _LATEX.latex_to_text(_UNESCAPED_TEX_SPECIALS.sub(r"\\\1", name))
    except Exception:  # pylatexenc has no narrow error type for odd input
        return collapse_whitespace(name)
    decoded = collapse_whitespace(unicodedata.normalize("NFC", text))
    return decoded or collapse_whitespace(name)


def parse_rfc822(text: str) -> datetime | None:
    """An RSS date (`Thu, 28 Nov 2024 00:00:00 -0500`) as an aware UTC datetime, or None."""
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_iso8601(text: str) -> datetime | None:
    """An ISO 8601 timestamp (`2025-03-14T17:59:59.000Z`) as an aware UTC datetime, or None."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None
