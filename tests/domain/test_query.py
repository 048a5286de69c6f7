import pytest

from bot.domain.parser import parse_query
from bot.domain.query import (
    And,
    Category,
    Not,
    Or,
    ParseError,
    Phrase,
    Prefix,
    Term,
    Upvotes,
    leaves,
    positive_terms,
)


def root(text):
    return parse_query(text).root


def error(text, **kwargs):
    with pytest.raises(ParseError) as caught:
        parse_query(text, **kwargs)
    return caught.value


class TestSyntaxTable:
    """One test per row of the syntax table of docs/queries.md."""

    def test_bare_term(self):
        assert root("diffusion") == Term("diffusion")
        assert root("Diffusion") == Term("diffusion")

    def test_prefix(self):
        assert root("distill*") == Prefix("distill")
        assert root("Distill*") == Prefix("distill")

    def test_quoted_phrase(self):
        assert root('"knowledge distillation"') == Phrase(("knowledge", "distillation"))

    def test_implicit_and_explicit_and(self):
        assert root("a b") == And((Term("a"), Term("b")))
        assert root("a AND b") == And((Term("a"), Term("b")))

    def test_or(self):
        assert root("a OR b") == Or((Term("a"), Term("b")))

    def test_minus_and_not(self):
        expected = And((Term("b"), Not(Term("a"))))
        assert root("b -a") == expected
        assert root("b NOT a") == expected

    def test_grouping(self):
        assert root("(a OR b) c") == And((Or((Term("a"), Term("b"))), Term("c")))

    def test_fields(self):
        assert root("title:x") == Term("x", "title")
        assert root("abstract:x") == Term("x", "abstract")
        assert root("author:lecun") == Term("lecun", "author")
        assert root('author:"Yann LeCun"') == Phrase(("yann", "lecun"), "author")
        assert root('title:"diffusion models"') == Phrase(("diffusion", "models"), "title")
        assert root("abstract:distill*") == Prefix("distill", "abstract")

    def test_field_names_are_case_insensitive(self):
        assert root("Title:x") == Term("x", "title")

    def test_category(self):
        assert root("category:cs.CL") == Category("cs.cl")
        assert root("category:cs.*") == Category("cs.", is_prefix=True)

    @pytest.mark.parametrize(
        ("text", "op", "value"),
        [
            ("upvotes>=50", ">=", 50),
            ("upvotes>5", ">", 5),
            ("upvotes<=7", "<=", 7),
            ("upvotes<3", "<", 3),
            ("upvotes=0", "=", 0),
            ("upvotes >= 10", ">=", 10),
            ("Upvotes>=1", ">=", 1),
        ],
    )
    def test_upvotes(self, text, op, value):
        assert root(text) == Upvotes(op, value)


class TestPreciseRules:
    def test_unquoted_term_with_several_words_is_a_phrase(self):
        assert root("soft-nms") == Phrase(("soft", "nms"))
        assert root("GPT-4") == Phrase(("gpt", "4"))
        assert root("author:le-cun") == Phrase(("le", "cun"), "author")

    def test_precedence_and_binds_tighter_than_or(self):
        assert root("a OR b c") == Or((Term("a"), And((Term("b"), Term("c")))))
        assert root("a b OR c") == Or((And((Term("a"), Term("b"))), Term("c")))

    def test_not_binds_tightest(self):
        assert root("-a b") == And((Not(Term("a")), Term("b")))
        assert root("c NOT a OR b") == Or((And((Term("c"), Not(Term("a")))), Term("b")))
        assert root("-(a b) c") == And((Not(And((Term("a"), Term("b")))), Term("c")))

    def test_lower_case_operators_are_words(self):
        assert root("a or b") == And((Term("a"), Term("or"), Term("b")))
        assert root("a and not b") == And((Term("a"), Term("and"), Term("not"), Term("b")))

    def test_mixed_case_operators_are_words(self):
        assert root("a Or b") == And((Term("a"), Term("or"), Term("b")))

    def test_double_negation_cancels(self):
        assert root("--a") == Term("a")
        assert root("NOT NOT a") == Term("a")

    def test_hyphen_inside_a_word_is_not_negation(self):
        assert root("state-of-the-art") == Phrase(("state", "of", "the", "art"))

    def test_smart_quotes_are_quotes(self):
        assert root("“knowledge distillation”") == Phrase(("knowledge", "distillation"))

    def test_phrase_of_one_word_is_an_exact_word(self):
        assert root('"models"') == Phrase(("models",))

    def test_bare_term_keeps_what_was_typed(self):
        assert root("queries") == Term("queries")

    def test_nfkc_and_casefold_apply_to_terms(self):
        assert root("ＧＰＵ") == Term("gpu")
        assert root("Straße") == Term("strasse")

    def test_accents_are_not_folded(self):
        assert root("café") == Term("café")
        assert root("café") != root("cafe")

    @pytest.mark.parametrize("text", ["-a", "NOT a NOT b", "-(a OR b)", "a OR -b", "-upvotes>=5", "-(a -b)"])
    def test_query_with_nothing_to_look_for_is_refused(self, text):
        assert "look for" in str(error(text))

    @pytest.mark.parametrize(
        "text", ["upvotes>=50", "upvotes<5", "a -b", "-(-a)", "-(a OR -b)", "a (b OR -c)"]
    )
    def test_query_with_something_to_look_for_is_allowed(self, text):
        parse_query(text)

    def test_nested_or_and_are_flattened(self):
        assert root("(a OR b) OR c") == Or((Term("a"), Term("b"), Term("c")))
        assert root("a (b c)") == And((Term("a"), Term("b"), Term("c")))
        assert root("((((a))))") == Term("a")


class TestCanonicalText:
    @pytest.mark.parametrize(
        ("text", "canonical"),
        [
            ("a OR b c", "a OR (b c)"),
            ("Diffusion AND NOT video", "diffusion -video"),
            ("-(a OR b) c", "-(a OR b) c"),
            ("soft-NMS", '"soft nms"'),
            ('title:"Yann LeCun"   author:x*', 'title:"yann lecun" author:x*'),
            ("category:CS.CL upvotes >= 5", "category:cs.cl upvotes>=5"),
            ("category:cs.* x", "category:cs.* x"),
        ],
    )
    def test_str_shows_how_the_query_was_understood(self, text, canonical):
        assert str(parse_query(text)) == canonical

    def test_str_parses_back_to_the_same_tree(self):
        query = parse_query('(a OR "b c") -title:d* author:e category:cs.* upvotes<3')
        assert parse_query(str(query)).root == query.root

    def test_source_is_kept(self):
        assert parse_query("Diffusion  models").source == "Diffusion  models"


class TestErrors:
    @pytest.mark.parametrize(
        ("text", "position"),
        [
            ("", 0),
            ("   ", 3),
            ("a OR", 4),
            ("a OR ", 5),
            ("diffusion AND", 13),
            ("AND a", 0),
            ("a AND OR b", 6),
            ("a NOT", 5),
            ("(a b", 0),
            ("x (y (z)", 2),
            ('a "b c', 2),
            ('title:"b c', 6),
            ("a)", 1),
            ("()", 1),
            ("a ( )", 4),
            ("foo:bar", 0),
            ("a http://x", 2),
            ("upvotes>=abc", 9),
            ("upvotes>=", 9),
            ("upvotes>=1.5", 9),
            ("upvotes>=1234567890", 9),
            ("upvotes:5", 7),
            ("title:", 6),
            ("a title:(b)", 8),
            ('a ""', 2),
            ("+++", 0),
            ("a -", 2),
            ("soft-n*", 0),
            ("category:", 9),
            ("category:*", 9),
            ('category:"cs CL"', 9),
            ("-a", 0),
            ("x -a OR -b", 8),
            ("a OR -b", 5),
        ],
    )
    def test_position(self, text, position):
        assert error(text).position == position

    def test_message_names_position_and_what_was_expected(self):
        caught = error("diffusion OR")
        assert str(caught) == 'position 12: expected a term or "(" after "OR"'
        assert caught.expected == 'a term or "("'

    def test_unclosed_paren_points_at_the_opening_paren(self):
        caught = error("a (b OR c")
        assert caught.position == 2
        assert '")"' in caught.expected

    def test_unclosed_quote_points_at_the_opening_quote(self):
        caught = error('x "deep learning')
        assert caught.position == 2
        assert "quote" in str(caught)

    def test_spaced_minus_asks_for_the_term_right_after_it(self):
        caught = error("diffusion - video")
        assert caught.position == 10
        assert '"-video"' in str(caught)

    def test_unknown_field_lists_the_allowed_ones(self):
        message = str(error("venue:neurips"))
        for field in ("title:", "abstract:", "author:", "category:", "upvotes"):
            assert field in message

    def test_too_long(self):
        caught = error("x" * 301)
        assert caught.position == 300
        assert "300" in str(caught)
        assert error("a" * 11, max_length=10).position == 10
        parse_query("x" * 300)

    def test_nesting_is_capped(self):
        parse_query("(" * 50 + "a" + ")" * 50)
        caught = error("(" * 51 + "a" + ")" * 51)
        assert caught.position == 50

    def test_error_is_an_exception_with_the_position_in_its_text(self):
        caught = error("(a")
        assert isinstance(caught, Exception)
        assert str(caught).startswith("position 0: ")


class TestPositiveTerms:
    def test_negated_leaves_are_left_out(self):
        query = parse_query('distill* "knowledge distillation" -video NOT (audio -speech)')
        assert positive_terms(query) == [
            Prefix("distill"),
            Phrase(("knowledge", "distillation")),
            Term("speech"),
        ]

    def test_all_leaves_include_the_negated_ones(self):
        query = parse_query("a -(b OR title:c*) upvotes>1")
        assert list(leaves(query.root)) == [Term("a"), Term("b"), Prefix("c", "title"), Upvotes(">", 1)]

    def test_each_leaf_once(self):
        assert positive_terms(parse_query("a (a OR b)")) == [Term("a"), Term("b")]
