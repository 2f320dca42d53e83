"""One text normal form for matching and clustering.

Case-, accent- and dotted-i-insensitive, so Türkiye = turkiye = TÜRKIYE and
İsrail = israil: NFKC, Turkish dotted/dotless i folded to plain i, case folded,
combining marks removed (which also drops Hebrew niqqud and Arabic harakat),
Arabic tatweel removed. Words are maximal runs of letters and digits.
"""

from __future__ import annotations

import codecs
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


class _FoldTable(dict[int, str]):
    """`str.translate` table: each character to its matching form, non-word characters to spaces.

    Filled lazily (a feed's alphabet is small) so folding a text is one C-level
    `translate` call; folding per character keeps a map back to the original offsets.
    """

    def __missing__(self, code: int) -> str:
        folded = normalize(chr(code))
        value = "".join(ch if ch.isalnum() else " " for ch in folded)
        self[code] = value
        return value


_FOLD = _FoldTable()
_FOLD_ERRORS = "newswatch.fold"


def _fold_to_ascii(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeEncodeError):
        raise err
    piece = err.object[err.start : err.end].translate(_FOLD)
    if not piece.isascii():
        raise err  # not Latin script: the caller folds the whole text another way
    return piece, err.end


codecs.register_error(_FOLD_ERRORS, _fold_to_ascii)

_CHUNKS: dict[str, str] = {}
_CHUNK_CACHE_SIZE = 100_000


def _fold_chunk(chunk: str) -> str:
    folded = chunk.translate(_FOLD)
    _CHUNKS[chunk] = folded
    return folded


# ASCII folds one-to-one; a bytes table is the fastest translate CPython has.
_ASCII_FOLD = bytes.maketrans(
    bytes(range(128)),
    bytes(ord(chr(c).lower()) if chr(c).isalnum() else 32 for c in range(128)),
)


def fold(text: str) -> str:
    """`text` in matching form, non-word characters turned into spaces.

    The words of `fold(text)` (its runs of non-space characters) are `words(text)`
    for all practical text; unlike `normalize`, folding works character by character,
    which is what lets `fold_with_offsets` point back into the original text. Only
    the words are promised, not the spacing between them.
    """
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_FOLD).decode("ascii")
    try:
        # Latin-script text (English with curly quotes, Turkish, French) usually folds
        # to ASCII: the codec hands each non-ASCII run to `_fold_to_ascii`.
        raw = text.encode("ascii", _FOLD_ERRORS)
    except UnicodeEncodeError:
        pass
    else:
        return raw.translate(_ASCII_FOLD).decode("ascii")
    # Character-by-character translation through a Python mapping is slow; news
    # vocabularies repeat, so fold whole whitespace-separated chunks through a cache.
    cache = _CHUNKS
    if len(cache) > _CHUNK_CACHE_SIZE:
        cache.clear()
    get = cache.get
    return " ".join([get(chunk) or _fold_chunk(chunk) for chunk in text.split()])


def fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """`fold(text)` and, for each of its characters, the index of the original character."""
    if text.isascii():
        return fold(text), list(range(len(text)))
    out: list[str] = []
    origin: list[int] = []
    table = _FOLD
    for i, ch in enumerate(text):
        piece = table[ord(ch)]
        if piece:
            out.append(piece)
            origin.extend([i] * len(piece))
    return "".join(out), origin


_NON_SPACE = re.compile(r"\S+")


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """The normalised words of `text` with their `[start, end)` spans in the original text.

    A span covers the whole original word, including combining marks and tatweels
    the normal form dropped, so highlighting it never cuts a character apart.
    """
    if text.isascii():
        return [(m.group(), m.start(), m.end()) for m in _NON_SPACE.finditer(fold(text))]
    spans: list[tuple[str, int, int]] = []
    get = _CHUNKS.get
    for chunk_match in _NON_SPACE.finditer(text):
        chunk, base = chunk_match.group(), chunk_match.start()
        folded = get(chunk) or _fold_chunk(chunk)
        if len(folded) == len(chunk):
            # Folded one character for one (the usual case, Arabic and Hebrew included):
            # offsets carry over without walking the characters.
            spans.extend(
                (m.group(), base + m.start(), base + m.end()) for m in _NON_SPACE.finditer(folded)
            )
        else:
            spans.extend((w, base + s, base + e) for w, s, e in _chunk_spans(chunk))
    return spans


def _chunk_spans(text: str) -> list[tuple[str, int, int]]:
    folded, origin = fold_with_offsets(text)
    spans: list[tuple[str, int, int]] = []
    for m in _NON_SPACE.finditer(folded):
        start = origin[m.start()]
        end = origin[m.end() - 1] + 1
        # Extend over marks the fold dropped (e.g. a trailing niqqud or harakat).
        while end < len(text) and not _FOLD[ord(text[end])] and not text[end].isspace():
            end += 1
        spans.append((m.group(), start, end))
    return spans
