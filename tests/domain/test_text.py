import pytest

from bot.domain.text import normalize, stem, words


class TestNormalize:
    def test_nfkc_folds_compatibility_characters(self):
        assert normalize("ﬁne-tuning") == "fine-tuning"
        assert normalize("ＧＰＴ") == "gpt"
        assert normalize("x²") == "x2"

    def test_casefold_is_stronger_than_lower(self):
        assert normalize("Straße") == "strasse"
        assert normalize("ΣΊΣΥΦΟΣ") == normalize("σίσυφος")

    def test_accents_are_kept(self):
        assert normalize("Café") == "café"
        assert normalize("café") != normalize("cafe")

    def test_composed_and_decomposed_accents_agree(self):
        assert normalize("cafe\u0301") == normalize("caf\u00e9")


class TestWords:
    def test_split_on_punctuation(self):
        assert words("Soft-NMS") == ["soft", "nms"]
        assert words("GPT-4o, (RLHF)!") == ["gpt", "4o", "rlhf"]

    def test_underscore_separates(self):
        assert words("snake_case_name") == ["snake", "case", "name"]

    def test_unicode_letters_and_digits_are_word_characters(self):
        assert words("Ψ-Bench: αDepth") == ["ψ", "bench", "αdepth"]
        assert words("数据集 ٣٤") == ["数据集", "٣٤"]

    def test_accented_words_stay_whole(self):
        assert words("Ramírez naïve") == ["ramírez", "naïve"]

    def test_latex_and_symbols_are_separators(self):
        assert words("$\\nabla^2$DFT") == ["nabla", "2", "dft"]

    def test_empty_and_symbol_only_text(self):
        assert words("") == []
        assert words(" -- +++ ... ") == []

    def test_whitespace_of_every_kind(self):
        assert words("a\n  b\u00a0c\td") == ["a", "b", "c", "d"]


class TestStem:
    @pytest.mark.parametrize(
        ("word", "expected"),
        [
            ("models", "model"),
            ("transformers", "transformer"),
            ("plays", "play"),
            ("cases", "case"),
            ("uses", "use"),
            ("gas", "ga"),
            ("its", "it"),
        ],
    )
    def test_final_s_is_dropped(self, word, expected):
        assert stem(word) == expected

    @pytest.mark.parametrize("word", ["status", "bus", "corpus", "class", "less", "ss"])
    def test_us_and_ss_keep_their_s(self, word):
        assert stem(word) == word

    @pytest.mark.parametrize(
        ("word", "expected"),
        [("queries", "query"), ("studies", "study"), ("ties", "ty"), ("series", "sery")],
    )
    def test_ies_becomes_y(self, word, expected):
        assert stem(word) == expected

    @pytest.mark.parametrize("word", ["aies", "eies", "ies"])
    def test_ies_after_a_or_e_or_alone_is_kept(self, word):
        assert stem(word) == word

    @pytest.mark.parametrize("word", ["toes", "trees", "canoes", "aes", "ees", "oes"])
    def test_aes_ees_oes_keep_their_s(self, word):
        assert stem(word) == word

    @pytest.mark.parametrize("word", ["is", "as", "s", "", "model", "query", "x"])
    def test_short_words_and_words_without_final_s_are_unchanged(self, word):
        assert stem(word) == word

    def test_only_lower_case_s_is_removed(self):
        # Stemming runs on normalised words; an upper-case S is not a plural mark there.
        assert stem("MODELS") == "MODELS"

    def test_stemming_twice_changes_nothing_more(self):
        for word in ["models", "queries", "buses", "classes", "toes", "series"]:
            assert stem(stem(word)) == stem(word)
