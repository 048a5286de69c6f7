"""`like:<arXiv id>` in the query language: what parses, what is refused and where."""

from __future__ import annotations

import pytest

from bot.domain.parser import parse_query
from bot.domain.query import Like, ParseError, liked_ids


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("like:2510.02283", "like:2510.02283"),
        ("like:2510.02283v3", "like:2510.02283"),
        ("LIKE:2510.02283", "like:2510.02283"),
        ("like:hep-th/9901001", "like:hep-th/9901001"),
        ("like:hep-th/9901001v2", "like:hep-th/9901001"),
        ("like:arXiv:2510.02283", "like:2510.02283"),
        ("like:https://arxiv.org/abs/2510.02283v1", "like:2510.02283"),
        ("like:2510.02283 -video", "like:2510.02283 -video"),
        ("like:2510.02283 OR like:2509.22650", "like:2510.02283 OR like:2509.22650"),
        ("(like:2510.02283 OR diffusion) upvotes>=5", "(like:2510.02283 OR diffusion) upvotes>=5"),
    ],
)
def test_like_parses_to_the_id_without_version(text: str, canonical: str) -> None:
    query = parse_query(text)
    assert str(query) == canonical
    assert parse_query(str(query)).root == query.root


def test_like_is_an_ordinary_leaf() -> None:
    assert parse_query("like:2510.02283").root == Like("2510.02283")
    query = parse_query("like:2510.02283 OR (video -like:2509.22650) like:2510.02283v2")
    assert liked_ids(query) == ["2510.02283", "2509.22650"]


def test_like_alone_is_something_to_look_for() -> None:
    parse_query("like:2510.02283")  # no "only exclusions" refusal
    with pytest.raises(ParseError) as caught:
        parse_query("-like:2510.02283")
    assert caught.value.position == 0
    with pytest.raises(ParseError) as caught:
        parse_query("video OR -like:2510.02283")
    assert caught.value.position == 9


@pytest.mark.parametrize(
    ("text", "position", "detail"),
    [
        ("like:", 5, "an arXiv id after like:"),
        ("like:2510", 5, 'not "2510"'),
        ("video like:foo", 11, 'not "foo"'),
        ("like:2510.02283 like:25.1", 21, 'not "25.1"'),
        ('like:"2510.02283"', 5, "an arXiv id after like:"),
        ("like:2510.02283x", 5, 'not "2510.02283x"'),
    ],
)
def test_a_malformed_id_names_its_position(text: str, position: int, detail: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_query(text)
    assert caught.value.position == position
    assert detail in str(caught.value)


def test_unknown_field_message_lists_like() -> None:
    with pytest.raises(ParseError) as caught:
        parse_query("year:2025")
    assert "like:" in caught.value.message
