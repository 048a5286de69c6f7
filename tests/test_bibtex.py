"""BibTeX entries: TeX escaping, author forms, keys, and files read back by bibtexparser."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import bibtexparser
import pytest
from bibtexparser.bparser import BibTexParser
from pylatexenc.latex2text import LatexNodes2Text

from bot.domain.bibtex import (
    bibtex_entry,
    bibtex_file,
    bibtex_name,
    citation_key,
    split_name,
    tex_escape,
    tex_title,
    unique_keys,
)
from bot.domain.paper import Paper
from tests.conftest import RSS_ALL, load_feed

DECODE = LatexNodes2Text(math_mode="verbatim")


def decode(tex: str) -> str:
    return DECODE.latex_to_text(tex)


def parse(text: str) -> list[dict[str, str]]:
    """Read a .bib text with bibtexparser as a reference manager would (field names lower-cased)."""
    parser = BibTexParser(common_strings=True)
    return list(bibtexparser.loads(text, parser=parser).entries)


def paper(**fields: object) -> Paper:
    defaults: dict[str, object] = {
        "arxiv_id": "2403.01234",
        "title": "Attention Is All You Need",
        "authors": ("Ashish Vaswani", "Noam Shazeer"),
        "categories": ("cs.CL", "cs.LG"),
        "published_at": datetime(2024, 3, 2, 17, 0, tzinfo=UTC),
    }
    defaults.update(fields)
    return Paper(**defaults)  # type: ignore[arg-type]


# --- escaping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tex"),
    [
        ("plain words 42", "plain words 42"),
        ("R&D", r"R\&D"),
        ("50%", r"50\%"),
        ("$5", r"\$5"),
        ("#1", r"\#1"),
        ("snake_case", r"snake\_case"),
        ("{set}", r"\{set\}"),
        ("a~b", r"a{\textasciitilde}b"),
        ("x^2", r"x{\textasciicircum}2"),
        ("back\\slash", r"back{\textbackslash}slash"),
        ("é", r"{\'e}"),
        ("e\u0301", r"{\'e}"),  # decomposed accent, as some feeds send it
        ("ü", r"{\"u}"),
        ("ø", r"{\o}"),
        ("Ø", r"{\O}"),
        ("ß", r"{\ss}"),
        ("ł", r"{\l}"),
        ("ç", r"{\c{c}}"),
        ("ő", r"{\H{o}}"),
        ("ñ", r"{\~n}"),
        ("a–b", "a--b"),
        ("a—b", "a---b"),
    ],
)
def test_tex_escaping_table(text: str, tex: str) -> None:
    assert tex_escape(text) == tex


def test_escaped_latin_text_is_ascii_and_reads_back() -> None:
    text = "Søren Ødegård & Hans-Jürgen Straße: 100% {naïve} #1_x ~ \\"
    tex = tex_escape(text)
    assert tex.isascii()
    assert decode(tex) == text


def test_title_keeps_inline_math_and_protects_acronyms() -> None:
    assert tex_title("Scaling LLMs with $O(n \\log n)$ attention") == (
        r"Scaling {LLMs} with $O(n \log n)$ attention"
    )
    # "$5 and $10" is money, not math: a span starting or ending with a space is not math
    assert tex_title("Costs $5 and $10") == r"Costs \$5 and \$10"
    # arXiv writes accents in TeX: read and written again in the same braced form
    assert tex_title('Schr\\"odinger and Erd\\H{o}s') == r"Schr{\"o}dinger and Erd{\H{o}}s"
    # a formula glued to words stays one protected group
    assert tex_title("Insulator Ta$_2$NiSe$_5$") == r"Insulator {Ta$_2$NiSe$_5$}"


# --- authors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parts", "bibtex"),
    [
        ("Ashish Vaswani", ("Ashish", "", "Vaswani", ""), "Vaswani, Ashish"),
        ("Juan F. Mañas-Mañas", ("Juan F.", "", "Mañas-Mañas", ""), r"Ma{\~n}as-Ma{\~n}as, Juan F."),
        ("Ludwig van Beethoven", ("Ludwig", "van", "Beethoven", ""), "van Beethoven, Ludwig"),
        ("Vincent van der Berg", ("Vincent", "van der", "Berg", ""), "van der Berg, Vincent"),
        ("Ana da Silva Santos", ("Ana", "da", "Silva Santos", ""), "da Silva Santos, Ana"),
        ("Martin Luther King Jr.", ("Martin Luther", "", "King", "Jr."), "King, Jr., Martin Luther"),
        ("John Smith, III", ("John", "", "Smith", "III"), "Smith, III, John"),
        ("LeCun, Yann", ("Yann", "", "LeCun", ""), "LeCun, Yann"),
        ("José Müller", ("José", "", "Müller", ""), r"M{\"u}ller, Jos{\'e}"),
        ("Plato", ("", "", "Plato", ""), "Plato"),
    ],
)
def test_author_forms(name: str, parts: tuple[str, str, str, str], bibtex: str) -> None:
    assert split_name(name) == parts
    assert bibtex_name(name) == bibtex


def test_a_collaboration_is_one_braced_author() -> None:
    assert bibtex_name("The ATLAS Collaboration") == "{The ATLAS Collaboration}"
    entry = parse(bibtex_entry(paper(authors=("The ATLAS Collaboration", "Jane Doe"))))[0]
    assert entry["author"].split(" and ") == ["{The ATLAS Collaboration}", "Doe, Jane"]


def test_accented_authors_round_trip_through_bibtexparser() -> None:
    names = (
        "José Müller",
        "Søren Ødegård",
        "Hans-Jürgen Straße",
        "Łukasz Kaźmierczak",
        "Ludwig van Beethoven",
    )
    text = bibtex_entry(paper(authors=names))
    assert text.isascii()  # every accent written as TeX
    (entry,) = parse(text)
    read = [decode(a) for a in entry["author"].split(" and ")]
    assert read == [
        "Müller, José",
        "Ødegård, Søren",
        "Straße, Hans-Jürgen",
        "Kaźmierczak, Łukasz",
        "van Beethoven, Ludwig",
    ]
    # bibtexparser's own reading of the names gives the same people
    from bibtexparser.customization import author, convert_to_unicode

    unicode_entry = author(convert_to_unicode(dict(entry)))
    assert unicode_entry["author"][0] == "Müller, José"
    assert unicode_entry["author"][2] == "Straße, Hans-Jürgen"


# --- fields, keys, files --------------------------------------------------------------------


def test_entry_fields_for_an_arxiv_paper() -> None:
    text = bibtex_entry(paper(title="Costs & Benefits: 50% of #1_x in {braces}"))
    assert text.startswith("@misc{vaswani2024costs,")
    (entry,) = parse(text)
    assert entry["ENTRYTYPE"] == "misc"
    assert decode(entry["title"]) == "Costs & Benefits: 50% of #1_x in {braces}"
    assert entry["author"] == "Vaswani, Ashish and Shazeer, Noam"
    assert entry["year"] == "2024"
    assert entry["eprint"] == "2403.01234"
    assert entry["archiveprefix"] == "arXiv"
    assert entry["primaryclass"] == "cs.CL"
    assert entry["url"] == "https://arxiv.org/abs/2403.01234"


def test_no_category_no_primary_class_and_old_ids_give_their_year() -> None:
    (entry,) = parse(bibtex_entry(paper(arxiv_id="hep-th/9901001", categories=(), published_at=None)))
    assert "primaryclass" not in entry
    assert entry["year"] == "1999"
    assert entry["eprint"] == "hep-th/9901001"


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({}, "vaswani2024attention"),
        ({"authors": ("Søren Ødegård",), "title": "The Øresund Bridge"}, "odegard2024oresund"),
        ({"authors": ("Ludwig van Beethoven",), "title": "On a Symphony"}, "beethoven2024symphony"),
        ({"authors": (), "title": "$\\zeta$-functions of Graphs"}, "arxiv2024functions"),
        ({"authors": ("王小明",), "title": "A Study"}, "arxiv2024study"),
        ({"arxiv_id": "1706.03762"}, "vaswani2017attention"),
    ],
)
def test_citation_keys(fields: dict[str, object], key: str) -> None:
    assert citation_key(paper(**fields)) == key


def test_keys_are_unique_ascii_and_a_file_reads_back_whole() -> None:
    same = [paper(arxiv_id=f"2403.0123{i}") for i in range(4)]
    keys = unique_keys(same)
    assert keys == [
        "vaswani2024attention",
        "vaswani2024attentionb",
        "vaswani2024attentionc",
        "vaswani2024attentiond",
    ]
    papers = list(load_feed(RSS_ALL).papers[:200]) + same
    text = bibtex_file(papers)
    entries = parse(text)
    assert [e["eprint"] for e in entries] == [p.arxiv_id for p in papers]
    ids = [e["ID"] for e in entries]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z0-9]+", key) for key in ids)


def test_a_real_paper_with_tex_in_its_title_and_accents_in_its_authors() -> None:
    papers = {p.arxiv_id: p for p in load_feed(RSS_ALL).papers}
    real = papers["2411.18192"]  # "... and Painlev\'e equation", by Mañas-Mañas and Moreno-Balcázar
    assert "\\'e" in real.title
    text = bibtex_entry(real)
    assert text.isascii()
    (entry,) = parse(text)
    assert entry["ID"] == "filipuk2024differential"
    assert decode(entry["title"]) == decode(real.title)  # the same title as arXiv's TeX reads
    assert "Painlevé equation" in decode(entry["title"])
    assert [decode(a) for a in entry["author"].split(" and ")] == [
        "Filipuk, Galina",
        "Mañas-Mañas, Juan F.",
        "Moreno-Balcázar, Juan J.",
        "Rodríguez-Perales, Cristina",
    ]
    assert (entry["eprint"], entry["primaryclass"], entry["year"]) == ("2411.18192", "math.CA", "2024")
    formula = papers["2411.18331"]  # "... systems ZnCu$_3$(OH)$_6$Cl$_2$ and ..."
    (entry,) = parse(bibtex_entry(formula))
    assert "{ZnCu$_3$(OH)$_6$Cl$_2$}" in entry["title"]
