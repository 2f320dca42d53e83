"""One text normal form for matching and clustering.

Case-, accent- and dotted-i-insensitive, so Türkiye = turkiye = TÜRKIYE and
İsrail = israil: NFKC, Turkish dotted/dotless i folded to plain i, case folded,
combining marks removed (which also drops Hebrew niqqud and Arabic harakat),
Arabic tatweel removed. Words are maximal runs of letters and digits.
"""

from __future__ import annotations

import codecs
import re
import threading
import unicodedata
from collections.abc import Sequence
from itertools import islice
from typing import Protocol

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
    # Character-by-character translation through a Python mapping is slow; news
    # vocabularies repeat, so whole whitespace-separated chunks are folded once.
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
    return _fold_chunks(text)


FIELD_BREAK = "\x01"  # between an article's title and its text in `fold_fields`
DOC_BREAK = "\x02"  # after each article in `fold_fields`
_SET_ASIDE = "\x03"  # where `fold_fields` splices in text folded the slow way
_MARKS = FIELD_BREAK + DOC_BREAK + _SET_ASIDE
_ASCII_FOLD_MARKED = bytes(c if chr(c) in _MARKS else _ASCII_FOLD[c] for c in range(256))
_FOLD_FIELDS_ERRORS = "newswatch.fold-fields"
_set_aside = threading.local()
_LATIN_RUNS: dict[str, str] = {}  # non-ASCII runs that fold to ASCII: typographic quotes, é, ş


def _fold_fields_error(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeEncodeError):
        raise err
    text, start = err.object, err.start
    run = text[start : err.end]
    piece = _LATIN_RUNS.get(run)
    if piece is not None:
        return piece, err.end
    piece = run.translate(_FOLD)
    if piece.isascii():
        if len(_LATIN_RUNS) < _CHUNK_CACHE_SIZE:
            _LATIN_RUNS[run] = piece
        return piece, err.end
    # Not Latin script: fold the rest of this field through the chunk cache in one go
    # (one call per field, not per word), set it aside and leave a placeholder.
    end = len(text)
    for mark in (FIELD_BREAK, DOC_BREAK):
        at = text.find(mark, start)
        if 0 <= at < end:
            end = at
    _set_aside.pieces.append(_fold_chunks(text[start:end]) + " ")
    return _SET_ASIDE, end


codecs.register_error(_FOLD_FIELDS_ERRORS, _fold_fields_error)


class _Fields(Protocol):
    @property
    def title(self) -> str: ...
    @property
    def text(self) -> str: ...


# The commonest non-ASCII characters of English news, all folding to a space: replacing
# them first (a C-level scan each) spares most calls to the codec's error handler.
_TYPOGRAPHY = ("\u2019", "\u201c", "\u201d", "\u2014", "\u2018", "\u2013", "\u00a0")


def fold_fields(docs: Sequence[_Fields]) -> str:
    """Title and text of every document folded at once: the batch form of `fold`.

    Returns ``title \x01 text \x02 title \x01 text \x02 ...`` where each title and
    text is its `fold` (same words; spacing not promised): one pass over the whole
    batch instead of one Python call per field is what makes scanning thousands of
    articles cheap. Break characters inside the texts themselves become spaces.
    """
    raw = " \x02 ".join([f"{d.title} \x01 {d.text}" for d in docs]) + " \x02 "
    folded = _fold_marked(raw, len(docs))
    if folded is None:  # a title or text held a break character itself
        folded = _fold_marked(_rejoin_clean(docs), len(docs))
        assert folded is not None
    return folded


def _fold_marked(raw: str, count: int) -> str | None:
    """`raw` folded with its break characters kept; None unless it has `count` of each."""
    if raw.isascii():
        folded = raw.encode("ascii").translate(_ASCII_FOLD_MARKED).decode("ascii")
        pieces: list[str] = []
    else:
        for char in _TYPOGRAPHY:
            raw = raw.replace(char, " ")
        pieces = []
        _set_aside.pieces = pieces
        try:
            raw_ascii = raw.encode("ascii", _FOLD_FIELDS_ERRORS)
        finally:
            _set_aside.pieces = None
        folded = raw_ascii.translate(_ASCII_FOLD_MARKED).decode("ascii")
    # Counted on the ASCII result, where counting is cheapest.
    if (
        folded.count(FIELD_BREAK) != count
        or folded.count(DOC_BREAK) != count
        or folded.count(_SET_ASIDE) != len(pieces)
    ):
        return None
    if not pieces:
        return folded
    parts: list[str] = folded.split(_SET_ASIDE)
    spliced = [""] * (2 * len(parts) - 1)
    spliced[0::2] = parts
    spliced[1::2] = pieces
    return "".join(spliced)


_UNMARK = str.maketrans(_MARKS, " " * len(_MARKS))


def _rejoin_clean(docs: Sequence[_Fields]) -> str:
    """The batch text with break characters inside titles and texts made spaces."""
    fields = [(d.title.translate(_UNMARK), d.text.translate(_UNMARK)) for d in docs]
    return " \x02 ".join([f"{title} \x01 {text}" for title, text in fields]) + " \x02 "


def _fold_chunks(text: str) -> str:
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


def word_spans(text: str, limit: int | None = None) -> list[tuple[str, int, int]]:
    """The normalised words of `text` with their `[start, end)` spans in the original text.

    A span covers the whole original word, including combining marks and tatweels
    the normal form dropped, so highlighting it never cuts a character apart. With
    `limit`, only the first `limit` words.
    """
    folded = _fold_one_for_one(text)
    if folded is not None:
        found = _NON_SPACE.finditer(folded)
        return [(m.group(), m.start(), m.end()) for m in islice(found, limit)]
    return _spans_by_chunk(text, limit)


def word_bounds(text: str, limit: int | None = None) -> list[tuple[int, int]]:
    """The `[start, end)` spans of `word_spans(text, limit)`, without the words (cheaper)."""
    folded = _fold_one_for_one(text)
    if folded is not None:
        return [m.span() for m in islice(_NON_SPACE.finditer(folded), limit)]
    return [(start, end) for _, start, end in _spans_by_chunk(text, limit)]


# Skipping words in C: `_SKIP[k]` passes k words and finds the next; `_SKIP_16` passes 16.
# A word is followed by whitespace or nothing, so the engine cannot split one in two.
_SKIP = [re.compile(r"\s*(?:\S+\s+){" + str(k) + r"}(\S+)") for k in range(16)]
_SKIP_16 = re.compile(r"\s*(?:\S+\s+){16}")


def word_bounds_at(text: str, indices: Sequence[int]) -> dict[int, tuple[int, int]]:
    """`word_bounds(text)[i]` for each i in `indices` that `text` has, by index.

    Cheaper than all the word bounds when only a few words are wanted: the regex
    engine skips the words in between.
    """
    folded = _fold_one_for_one(text)
    wanted = sorted(set(indices))
    if folded is None:
        bounds = word_bounds(text, wanted[-1] + 1 if wanted else 0)
        return {i: bounds[i] for i in wanted if i < len(bounds)}
    found: dict[int, tuple[int, int]] = {}
    position, current = 0, -1  # `position` is just after word `current`
    for index in wanted:
        gap = index - current - 1
        while gap >= 16:
            skipped = _SKIP_16.match(folded, position)
            if skipped is None:
                return found
            position, current, gap = skipped.end(), current + 16, gap - 16
        word = _SKIP[gap].match(folded, position)
        if word is None:
            return found
        found[index] = word.span(1)
        position, current = word.end(), index
    return found


def _spans_by_chunk(text: str, limit: int | None) -> list[tuple[str, int, int]]:
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
        if limit is not None and len(spans) >= limit:
            return spans[:limit]
    return spans


def _fold_one_for_one(text: str) -> str | None:
    """`fold(text)` when it maps each character to exactly one (ASCII and most Latin text)."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_FOLD).decode("ascii")
    try:
        raw = text.encode("ascii", _FOLD_ERRORS)
    except UnicodeEncodeError:
        return None
    return raw.translate(_ASCII_FOLD).decode("ascii") if len(raw) == len(text) else None


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
