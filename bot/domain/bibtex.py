"""BibTeX entries for papers: what `/paper export` writes and the paper panel's BibTeX shows.

An arXiv paper becomes an `@misc` entry in the form arXiv itself and the biblatex `eprint`
fields use:

    @misc{vaswani2017attention,
      title = {Attention Is All You Need},
      author = {Vaswani, Ashish and Shazeer, Noam},
      year = {2017},
      eprint = {1706.03762},
      archivePrefix = {arXiv},
      primaryClass = {cs.CL},
      url = {https://arxiv.org/abs/1706.03762}
    }

Text is written as TeX: the characters TeX treats specially are escaped, and accented letters
become accent commands (`é` → `{\\'e}`, `ø` → `{\\o}`), so the file works with classic BibTeX
as well as with biber. arXiv titles often carry TeX of their own (`$\\alpha$`, `Schr\\"odinger`):
inline math is kept as it is, other TeX is read and written again in the same form as the rest.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from bibtexparser.bibdatabase import BibDatabase
from bibtexparser.bwriter import BibTexWriter
from pylatexenc.latex2text import LatexNodes2Text
from pylatexenc.latexencode import RULE_DICT, UnicodeToLatexConversionRule, UnicodeToLatexEncoder

from bot.domain.paper import Paper

FIELD_ORDER = ("title", "author", "year", "eprint", "archivePrefix", "primaryClass", "url")

_SYMBOL_ESCAPES = frozenset("&%$#_{}")


def _protect(replacement: str) -> str:
    """Brace accent and letter macros (`{\\'e}`, `{\\o}`) so they never run into the next letter."""
    if replacement.startswith("\\") and len(replacement) > 1 and replacement[1] not in _SYMBOL_ESCAPES:
        return "{" + replacement + "}"
    return replacement


_ENCODER = UnicodeToLatexEncoder(
    conversion_rules=[
        # TeX's own ligatures for the dashes, as people write them in .bib files
        UnicodeToLatexConversionRule(RULE_DICT, {ord("\u2013"): "--", ord("\u2014"): "---"}),
        "defaults",
    ],
    replacement_latex_protection=_protect,
    unknown_char_policy="keep",  # a script TeX has no command for (CJK) stays as UTF-8
    unknown_char_warning=False,
)
_DECODER = LatexNodes2Text(math_mode="verbatim")

_MATH = re.compile(r"(?<!\\)\$(?=\S)((?:[^$\\\n]|\\.)+?)(?<=\S)(?<!\\)\$")
"""Inline math in a title: `$...$`, not empty, not starting or ending with a space ("$5 and $10")."""
_PLACEHOLDER = "\ue000"
_PLACEHOLDER_BASE = 0xE100
_HELD = re.compile("\ue000[\ue100-\uefff]")
"""Where a math span waits while the words around it are read and escaped (private-use characters)."""
_TEX_COMMAND = re.compile(r"\\(?:[A-Za-z]+|[^A-Za-z\s])")
_UNESCAPED_SPECIAL = re.compile(r"(?<!\\)([&%#_])")
_SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv", "v", "2nd", "3rd", "4th"})
_GROUP_WORDS = frozenset(
    {"collaboration", "consortium", "team", "group", "project", "committee", "initiative", "et", "al", "al."}
)
_STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
        "in", "into", "is", "it", "its", "of", "on", "or", "our", "over", "the", "to", "toward",
        "towards", "under", "via", "vs", "we", "what", "when", "where", "which", "why", "with",
        "without", "you", "your",
    }
)  # fmt: skip
_ASCII_FOLD = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "Th",
        "ı": "i",
    }
)


def tex_escape(text: str) -> str:
    """Plain Unicode text as TeX: `&%$#_{}~^\\` escaped, accented letters as accent commands."""
    return str(_ENCODER.unicode_to_latex(unicodedata.normalize("NFC", text)))


def tex_to_text(tex: str) -> str:
    """TeX (accents, escapes, groups) back to plain Unicode text."""
    return unicodedata.normalize("NFC", _DECODER.latex_to_text(tex))


def tex_title(title: str) -> str:
    """A title as TeX: inline math kept, words with inner capitals or math braced.

    Bibliography styles lower-case titles; the braces keep acronyms, names and formulas as
    written (`{BERT}`, `{LLMs}`, `{ZnCu$_3$(OH)$_6$}`).
    """
    maths: list[str] = []

    def hold(found: re.Match[str]) -> str:
        math = found.group(0)
        maths.append(math if _balanced(math) else tex_escape(math))
        return _PLACEHOLDER + chr(_PLACEHOLDER_BASE + len(maths) - 1)

    text = _MATH.sub(hold, " ".join(title.split()))
    if _TEX_COMMAND.search(text):  # arXiv TeX in a title: read it, then write it our way
        text = _decoded(_UNESCAPED_SPECIAL.sub(r"\\\1", text), text)
    words = []
    for word in text.split():
        outside = _HELD.sub("", word)
        tex = _HELD.sub(lambda found: maths[ord(found.group(0)[1]) - _PLACEHOLDER_BASE], tex_escape(word))
        protect = _inner_capital(outside) or (outside != word and any(c.isalpha() for c in outside))
        words.append("{" + tex + "}" if protect else tex)
    return " ".join(words)


def _decoded(tex: str, fallback: str) -> str:
    try:
        return tex_to_text(tex)
    except Exception:  # pylatexenc has no narrow error type for odd input
        return fallback


def _inner_capital(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return any(c.isupper() for c in letters[1:])


def _balanced(text: str) -> bool:
    depth = 0
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def split_name(name: str) -> tuple[str, str, str, str]:
    """A person's name as BibTeX's four parts: (first, von, last, jr).

    "Ludwig van Beethoven" → ("Ludwig", "van", "Beethoven", ""); "Martin Luther King Jr." →
    ("Martin Luther", "", "King", "Jr."); a name already written "Last, First" keeps its order.
    As BibTeX reads "First von Last", the lower-case words before the last name are its von part.
    """
    name = " ".join(name.split())
    if "," in name:
        pieces = [p.strip() for p in name.split(",")]
        if len(pieces) == 2 and pieces[1].lower() in _SUFFIXES:  # "John Smith, Jr."
            first, von, last, _ = split_name(pieces[0])
            return first, von, last, pieces[1]
        jr = pieces[1] if len(pieces) > 2 else ""
        von, last = _split_von(pieces[0].split())
        return pieces[-1], von, last, jr
    words = name.split()
    jr = ""
    if len(words) > 2 and words[-1].lower() in _SUFFIXES:
        jr = words.pop()
    if len(words) <= 1:
        return "", "", " ".join(words), jr
    middle = words[1:-1]
    lower = [i for i, word in enumerate(middle) if word[:1].islower()]
    if not lower:
        return " ".join(words[:-1]), "", words[-1], jr
    start, end = lower[0] + 1, lower[-1] + 2
    return " ".join(words[:start]), " ".join(words[start:end]), " ".join(words[end:]), jr


def _split_von(words: list[str]) -> tuple[str, str]:
    """ "van der Berg" → ("van der", "Berg"): the leading lower-case words are the von part."""
    count = 0
    while count < len(words) - 1 and words[count][:1].islower():
        count += 1
    return " ".join(words[:count]), " ".join(words[count:])


def bibtex_name(name: str) -> str:
    """One author in BibTeX form, TeX-escaped: "von Last, Jr, First" (parts left out when empty).

    A group ("The ATLAS Collaboration") is braced whole, so BibTeX never splits it into names.
    """
    words = {word.lower() for word in name.split()}
    if words & _GROUP_WORDS or "and" in words:
        return "{" + tex_escape(" ".join(name.split())) + "}"
    first, von, last, jr = split_name(name)
    if not first and not von and not jr:
        return tex_escape(last)
    head = tex_escape(f"{von} {last}".strip())
    parts = [head] + ([tex_escape(jr)] if jr else []) + ([tex_escape(first)] if first else [])
    return ", ".join(parts)


def bibtex_authors(authors: Sequence[str]) -> str:
    return " and ".join(bibtex_name(a) for a in authors if a.strip())


def paper_year(paper: Paper) -> int | None:
    """The year of the first version: from a new-style arXiv id (2403.… → 2024), else its date."""
    found = re.match(r"^(\d{2})(\d{2})\.\d{4,5}$", paper.arxiv_id) or re.search(
        r"/(\d{2})(\d{2})\d{3}$", paper.arxiv_id
    )
    if found:
        yy = int(found.group(1))
        return (1900 if yy >= 91 else 2000) + yy
    return paper.published_at.year if paper.published_at else None


def ascii_word(text: str) -> str:
    """Lower-case ASCII letters and digits only: "Müller-Ødegård" → "mullerodegard"."""
    folded = unicodedata.normalize("NFKD", text.translate(_ASCII_FOLD))
    return "".join(c for c in folded if c.isascii() and c.isalnum()).lower()


def citation_key(paper: Paper) -> str:
    """`lastname2024firstword`: first author's last name, year, first significant title word."""
    surname = ""
    if paper.authors:
        _, _, last, _ = split_name(paper.authors[0])
        surname = ascii_word(last.split()[-1] if last.split() else "")
    plain_title = _MATH.sub(" ", paper.title)
    if _TEX_COMMAND.search(plain_title):
        plain_title = _decoded(plain_title, plain_title)
    words = [ascii_word(w) for w in re.split(r"[\s\-–—/:]+", plain_title)]
    word = next((w for w in words if w and w not in _STOPWORDS), "") or next((w for w in words if w), "")
    year = paper_year(paper)
    key = f"{surname or 'arxiv'}{year or ''}{word}"
    return key if key != "arxiv" else "arxiv" + ascii_word(paper.arxiv_id)


def entry_fields(paper: Paper, key: str | None = None) -> dict[str, str]:
    """The entry as bibtexparser's dict: `ENTRYTYPE`, `ID` and the fields, values already TeX."""
    fields = {"ENTRYTYPE": "misc", "ID": key or citation_key(paper), "title": tex_title(paper.title)}
    authors = bibtex_authors(paper.authors)
    if authors:
        fields["author"] = authors
    year = paper_year(paper)
    if year:
        fields["year"] = str(year)
    fields["eprint"] = paper.arxiv_id
    fields["archivePrefix"] = "arXiv"
    if paper.categories:
        fields["primaryClass"] = paper.categories[0]
    fields["url"] = paper.abs_url
    return fields


def unique_keys(papers: Iterable[Paper]) -> list[str]:
    """Each paper's citation key, made unique by a letter after the first: `…2024attention`, `…b`."""
    keys: list[str] = []
    taken: set[str] = set()
    for paper in papers:
        base = key = citation_key(paper)
        suffix = 1
        while key in taken:
            suffix += 1
            key = base + _letters(suffix)
        taken.add(key)
        keys.append(key)
    return keys


def _letters(number: int) -> str:
    """2 → "b", 26 → "z", 27 → "aa"."""
    out = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        out = chr(ord("a") + rest) + out
    return out


def _writer() -> BibTexWriter:
    writer = BibTexWriter()
    writer.indent = "  "
    writer.display_order = list(FIELD_ORDER)
    writer.order_entries_by = None
    return writer


def bibtex_file(papers: Sequence[Paper]) -> str:
    """A .bib file of `papers`, in the order given, every key unique."""
    database = BibDatabase()
    database.entries = [entry_fields(p, k) for p, k in zip(papers, unique_keys(papers), strict=True)]
    return str(_writer().write(database))


def bibtex_entry(paper: Paper) -> str:
    """One paper's entry, as shown to be copied into a bibliography."""
    return bibtex_file([paper]).strip()
