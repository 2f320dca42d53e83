"""One text normal form for matching and clustering.

Case-, accent- and dotted-i-insensitive, so Türkiye = turkiye = TÜRKIYE and
İsrail = israil: NFKC, Turkish dotted/dotless i folded to plain i, case folded,
combining marks removed (which also drops Hebrew niqqud and Arabic harakat),
Arabic tatweel removed. Words are maximal runs of letters and digits.
"""

from __future__ import annotations

import re
import unicodedata

# İ (U+0130) casefolds to "i̇" (i + combining dot) and ı (U+0131) has no ASCII fold:
# map both to plain i before folding so Turkish spellings meet English ones.
_PRE_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u0640": None})
_WORD = re.compile(r"\w+", re.UNICODE)


def normalize(text: str) -> str:
    """Return `text` in matching form (same length guarantees are not made)."""
    text = unicodedata.normalize("NFKC", text).translate(_PRE_FOLD).casefold()
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped).replace("_", " ")


def words(text: str) -> list[str]:
    """The normalised words of `text`, in order."""
    return _WORD.findall(normalize(text))
