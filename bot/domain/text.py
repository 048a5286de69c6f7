"""How paper text and query text are turned into words, the same way everywhere.

Text is NFKC-normalised and casefolded (accents are kept), then split into words on
anything that is not a Unicode letter or digit. Bare query terms and title/abstract
words are folded to their singular with Lucene's EnglishMinimalStemmer.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_WORD = re.compile(r"[^\W_]+")
"""A run of Unicode letters (L*) and digits (N*): `\\w` without the underscore."""


def normalize(text: str) -> str:
    """NFKC-normalise and casefold `text`; accents are not removed (`café` stays `café`)."""
    return unicodedata.normalize("NFKC", text).casefold()


def words(text: str) -> list[str]:
    """The normalised words of `text`, split on anything that is not a letter or digit."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


@lru_cache(maxsize=1 << 17)
def stem(word: str) -> str:
    """Fold an English plural to its singular, exactly as Lucene's EnglishMinimalStemmer.

    `models` → `model`, `queries` → `query`; `status`, `class`, `toes`, `trees` and
    words shorter than three characters are unchanged.
    """
    size = len(word)
    if size < 3 or word[-1] != "s":
        return word
    before = word[-2]
    if before in "us":
        return word
    if before == "e":
        third = word[-3]
        if size > 3 and third == "i" and word[-4] not in "ae":
            return word[:-3] + "y"
        if third in "iaoe":
            return word
    return word[:-1]
