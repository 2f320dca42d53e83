"""Story clustering: group near-duplicate articles from different outlets into stories.

Two articles are *near-duplicates* when, within `window` of each other:
- the Jaccard similarity of their word-bigram sets (title and summary, in the text
  normal form of `watch.normalize`) is at least `threshold`;
- both have at least `min_shingles` bigrams (a three-word template headline such
  as "Live: Storm Bert latest" says nothing about which storm update it is);
- they do not *conflict*: each mentions a number, number word or weekday that the
  other does not ("kills three ... on Monday" vs "kills two ... on Tuesday").
  Wire stories about different events share most of their wording and differ in
  exactly these tokens; rewrites of one event add or drop them on one side only.

A story is a connected component of that near-duplicate graph. The graph's
components depend only on the set of articles, not on arrival order (but see
boilerplate, below), and an arrival only ever adds edges, so `add` is incremental:
it finds the new article's neighbours through a small index and unions their
stories. Single-link chaining could join two events through a bridge article; the
strict threshold and the conflict veto keep the edges precise enough that we prefer
this to order-dependent schemes such as "attach to the nearest representative"
(see `tests/data/story_pairs.jsonl`).

Candidates come from a bottom-k sketch of word 4-grams: every article indexes its
`sketch_size` smallest 4-gram hashes, and only articles sharing at least
`min_shared_keys` of them are verified (exactly, on the bigrams). Each of the
bottom-16 hashes of the union of two 4-gram sets lies in their intersection with
probability J4, the 4-gram Jaccard. Copies of one story share long runs of words:
on the labelled set's near-duplicate pairs J4 is 0.26-0.28 at the threshold's
bigram Jaccard (0.42), where two shared keys have a probability of about 0.95,
and every pair shares at least four. 4-grams rather than bigrams because news is
written in set phrases: a bigram such as "on Monday" or "were killed" is on
thousands of articles and even one with a number ("after 23") on hundreds, so
that on the bench's wire ledes each article met ~100 candidates through them
(3.4k articles/s; 16k/s with 4-grams, and recall up from 0.91 to 0.95). Hashes
are stable (tuple hashes of CRC-32 word hashes), so the candidate pairs, and
hence the stories, are the same in every process.

A key held by more than `_MAX_POSTING` articles of one index partition is
boilerplate (a site's footer, a template sentence), unless those articles are
mostly copies of a few stories (a story carried by hundreds of outlets, in as many
stories as its copies have not yet been joined): its list is closed once they span
more than `_MAX_OPEN_LIST_STORIES` stories and fewer than
`_OPEN_LIST_COPIES` articles a story, and yields no candidates.
This is where arrival order matters: a pair that needs such a key to reach
`min_shared_keys` is found only if its second article arrives before the list closes.
In reverse order, the 1,000 bench feeds' 50,000 entries end in other stories for 104
articles; the 10,000 feeds' 500,000, whose wire stories have up to 189 copies, for
24,785 (`bench/cluster_quality.py`). Keeping every list open would make it exact
and clustering ten times slower.

Identity: a story's key is the smallest article id it has ever contained (ids grow
with arrival, so the key of a growing story never changes); when stories merge the
smallest key survives. The representative is the earliest published article, ties
broken by the smaller article id. Memory holds only the articles inside the window
(`evict`); a story whose articles were all evicted is forgotten. The index is
partitioned by publication time, one partition a window long: an article's
neighbours are in its own partition or the two beside it, and an evicted article's
entries (skipped when met) go when its whole partition has left the window, dropped
at once: at most two windows' worth, and eviction never visits cold posting lists
nor rebuilds anything. Held state is tuples of atomic values and
bytes, which the cyclic GC does not traverse: collections stay cheap however large
the window. A wire copy carried verbatim by several outlets (the same title and
summary as a recently added article still held) takes that article's signature
instead of being fingerprinted again: the same values, computed once.
"""

from __future__ import annotations

import collections
import heapq
import html
import operator
import re
import struct
import sys
import zlib
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import repeat
from typing import Literal

from watch.normalize import fold

__all__ = [
    "DEFAULT_MIN_SHARED_KEYS",
    "DEFAULT_MIN_SHINGLES",
    "DEFAULT_SKETCH_SIZE",
    "DEFAULT_THRESHOLD",
    "DEFAULT_WINDOW",
    "SKETCH_PREFIX",
    "Signature",
    "StoryAssignment",
    "StoryCandidate",
    "StoryClusterer",
    "StoryInfo",
    "feed_sketches",
    "fingerprint",
    "is_near_duplicate",
    "similarity",
    "sketch",
]

# Chosen on tests/data/story_pairs.jsonl: 0.40 is the lowest threshold at which no
# pair of different events merges (the closest different-event pair scores 0.36);
# recall there is 0.79. See tests/test_cluster.py::test_labelled_pairs_*.
# A key held by more articles than this in one index partition is checked each time it
# passes a multiple of it: the list is closed as boilerplate once its articles span more
# than _MAX_OPEN_LIST_STORIES stories with fewer than _OPEN_LIST_COPIES articles a
# story, or hold _MAX_OPEN_LIST entries. 32 on the bench feeds (bench/cluster_quality.py):
# recall 0.95 at 16k articles/s; 256 gave 0.96 at 3.4k/s.
_MAX_POSTING = 32
_MAX_POSTING_BYTES = 8 * _MAX_POSTING
_MAX_OPEN_LIST = 1024
_MAX_OPEN_LIST_STORIES = 2
# A wire story carried by ~180 outlets (10,000 bench feeds) has its copies in several
# stories until they are joined: closing its keys' lists at three stories split such
# stories into dozens, and recall there fell to 0.61; a list of at least 4 articles a
# story stays open, and it is 0.89 (precision 1.0000 both; 0.95 at 1,000 feeds either way).
# With 2 it was 0.97, but precision fell to 0.9999 (wrong pairs in 10 stories, not 8);
# with 8, 0.80.
_OPEN_LIST_COPIES = 4
DEFAULT_THRESHOLD = 0.40
DEFAULT_WINDOW = timedelta(hours=72)
DEFAULT_MIN_SHINGLES = 6
DEFAULT_SKETCH_SIZE = 16
DEFAULT_MIN_SHARED_KEYS = 2
_MAX_TITLE_WORDS = 40
_MAX_SUMMARY_WORDS = 50
_SUMMARY_HEAD_CHARS = 4000

_TAG = re.compile(r"<[^>]*>")
# WordPress appends this to every excerpt; it would make syndicated copies differ.
_WP_FOOTER = re.compile(r"The post .{0,500}? appeared first on .{0,200}$", re.DOTALL)


def _word_set(text: str) -> frozenset[bytes]:
    return frozenset(text.encode().split())


_NUMBER_WORDS = _word_set(
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy "
    "eighty ninety hundred hundreds thousands dozen dozens"
)
_WEEKDAYS = _word_set("monday tuesday wednesday thursday friday saturday sunday")
_MARKER_WORDS = _NUMBER_WORDS | _WEEKDAYS


@dataclass(frozen=True, slots=True)
class StoryCandidate:
    """What clustering needs of a stored article. `summary` may be sanitized HTML."""

    article_id: int
    published_at: datetime
    title: str
    summary: str
    source: str = ""
    # `sketch(title, summary)` as stored with the article, if it was (or its entry in
    # `feed_sketches`): the signature without fingerprinting the text again (ignored
    # unless of the current version).
    # With a sketch starting with SKETCH_PREFIX, the title and summary may be empty.
    sketch: bytes | None = None


@dataclass(frozen=True, slots=True)
class Signature:
    """The near-duplicate signature of one article's title and summary.

    `shingles`: stable 64-bit hashes of the word bigrams; `markers`: the numbers,
    number words and weekdays (the conflict check); `keys`: the bottom-k index keys.
    Computed from the text in about 30 µs; `sketch` is the form storage keeps.
    """

    shingles: frozenset[int]
    markers: frozenset[bytes]
    keys: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StoryAssignment:
    """Where `add` put one article.

    `story_key` is the article's story after the whole batch. `merged_story_keys`
    are stories that stopped existing because this article joined them to
    `story_key` (storage: repoint their articles, delete their rows). They may
    include keys created earlier in the same batch.
    """

    article_id: int
    story_key: int
    representative_article_id: int
    merged_story_keys: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class StoryInfo:
    """A story as the clusterer knows it (only stories with an article in the window)."""

    key: int
    representative_article_id: int
    representative_published_at: datetime
    held_article_ids: frozenset[int]


# ASCII text folds one byte for one (the table of watch.normalize.fold): a C-level
# translate and split give the UTF-8 bytes of exactly normalize.words, 3x faster.
_ASCII_FOLD = bytes.maketrans(
    bytes(range(128)),
    bytes(ord(chr(c).lower()) if chr(c).isalnum() else 32 for c in range(128)),
)


def _words(text: str) -> list[bytes]:
    """The words of `text` in the normal form of `normalize.words`, as UTF-8 bytes.

    Bytes, because a word's stable hash is the CRC-32 of its bytes: one C call.
    """
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_FOLD).split()
    # Most news text is ASCII but for a curly quote or a dash: `fold` folds those runs
    # through a codec error handler, 10x faster than normalising character by character.
    return fold(text).encode().split()


def _summary_words(summary: str, limit: int = _MAX_SUMMARY_WORDS) -> list[bytes]:
    """The first `limit` words of a summary (`_MAX_SUMMARY_WORDS` go into a signature;
    the first of those are the same whatever the limit)."""
    if len(summary) > _SUMMARY_HEAD_CHARS:
        # A full article in the summary: the lede is in its head. Cleaning and
        # splitting only the head gives the same first words when it has more than
        # enough of them: what the cut spoils (a word, an entity) is at the very end.
        head = summary[:_SUMMARY_HEAD_CHARS]
        if head.rfind("<") > head.rfind(">"):
            head = head[: head.rfind("<")]  # a tag cut in two would leave words behind
        head_words = _words(_plain(head))
        if len(head_words) > _MAX_SUMMARY_WORDS + 2:
            return head_words[:limit]
    return _words(_plain(summary))[:limit]


def _plain(summary: str) -> str:
    if "<" in summary:
        summary = _TAG.sub(" ", summary)
    if "&" in summary:
        summary = html.unescape(summary)
    if "appeared first on" in summary:
        summary = _WP_FOOTER.sub("", summary)
    return summary


# A word's hash is the CRC-32 of its bytes, a bigram's the hash of the pair of word
# hashes: both are the same in every process (only str and bytes hashes are salted),
# on 64-bit CPython, so every process finds the same candidates and stories.
_crc32 = zlib.crc32


def fingerprint(title: str, summary: str, *, sketch_size: int = DEFAULT_SKETCH_SIZE) -> Signature:
    """The signature of an article: bigram hashes, conflict markers, index keys."""
    shingles, _, markers, _, keys = _fingerprint(title, summary, sketch_size)
    return Signature(shingles, markers, tuple(keys))


# Hashes are signed 64-bit integers (`hash` of a tuple is a Py_hash_t), packed into
# bytes, which the GC does not track either. One struct per count packs a list in one
# call; "l" (a C long, 64 bits where a hash is) converts each value several times
# cheaper than "q" or array.array, which parses each one as a call argument.
_HASH_FORMAT: Literal["l", "q"] = "l" if struct.calcsize("l") == 8 else "q"
_KEY_SIZE = 8
_MAX_BIGRAMS = _MAX_TITLE_WORDS + _MAX_SUMMARY_WORDS
_PACKERS = [struct.Struct(f"{n}{_HASH_FORMAT}").pack for n in range(_MAX_BIGRAMS + 1)]
# Bigram hashes are held as their low 32 bits (the first half of each packed hash on
# little-endian CPUs), in no particular order: half the memory of a held window. Two
# articles' ~50 bigrams each then share a hash by chance with a probability of ~6e-7,
# which moves a Jaccard similarity by one bigram.
_HELD_FORMAT: Literal["I"] = "I"
_HELD_SIZE = 4


def _held_hashes(held: bytes) -> memoryview[int]:
    """The bigram hashes of held bytes (iterating yields ints)."""
    return memoryview(held).cast(_HELD_FORMAT)


# What `_fingerprint` returns: the bigram hashes as a set (to verify candidates
# against) and packed (held: their low 32 bits), the markers as a set and as a tuple (held:
# tuples of atoms are invisible to the GC once it has seen them), and the index keys.
# A pure function of the text, of picklable values: another process could compute
# it ahead of time.
_Fingerprint = tuple[frozenset[int], bytes, frozenset[bytes], tuple[bytes, ...], list[int]]
_MARKER_CRCS = frozenset(map(_crc32, _MARKER_WORDS))
_NO_MARKERS: frozenset[bytes] = frozenset()
_ZERO = frozenset([b""])  # "0", "00", ... without their leading zeros


def _fingerprint(title: str, summary: str, sketch_size: int) -> _Fingerprint:
    # _words, inline for ASCII (the usual case)
    if title.isascii():
        title_words = title.encode("ascii").translate(_ASCII_FOLD).split()
    else:
        title_words = _words(title)
    if len(title_words) > _MAX_TITLE_WORDS:
        del title_words[_MAX_TITLE_WORDS:]
    # The lede is what copies of one story share; some feeds put the whole article
    # in the summary, which would cost time and memory and dilute the similarity.
    if (
        len(summary) <= _SUMMARY_HEAD_CHARS
        and summary.isascii()
        and "<" not in summary
        and "&" not in summary
        and "appeared first on" not in summary
    ):  # _summary_words, inline for a short plain ASCII summary (the usual case)
        summary_words = summary.encode("ascii").translate(_ASCII_FOLD).split()
        if len(summary_words) > _MAX_SUMMARY_WORDS:
            del summary_words[_MAX_SUMMARY_WORDS:]
    else:
        summary_words = _summary_words(summary)
    return _fingerprint_words(title_words, summary_words, sketch_size)


def _fingerprint_words(
    title_words: list[bytes], summary_words: list[bytes], sketch_size: int
) -> _Fingerprint:
    """`_fingerprint` of the title's and the summary's words (cut to their maximum)."""
    # Bigrams stay inside a field: the title's last word and the summary's first are
    # not a phrase, and outlets that retitle a story would pay for it twice.
    head = [*map(_crc32, title_words)]
    lede = [*map(_crc32, summary_words)]
    # zip hands `hash` the same pair tuple again once it is released (pairwise
    # allocates one per bigram); the hash of a pair is that of a fresh tuple.
    head_bigrams = [*map(hash, zip(head, head[1:]))]  # noqa: B905, RUF007
    lede_bigrams = [*map(hash, zip(lede, lede[1:]))]  # noqa: B905, RUF007
    distinct = frozenset(head_bigrams + lede_bigrams)
    held = memoryview(_PACKERS[len(distinct)](*distinct)).cast(_HELD_FORMAT)[::2].tobytes()
    shingles = frozenset(_held_hashes(held))
    # A 4-gram's hash is that of its two bigrams' hashes. A 4-gram repeated in the
    # text is a key twice: articles holding it look like sharing two keys with this
    # one, which costs a verification, not a wrong edge; rare enough to skip a set.
    grams = [
        *map(hash, zip(head_bigrams, head_bigrams[2:])),  # noqa: B905
        *map(hash, zip(lede_bigrams, lede_bigrams[2:])),  # noqa: B905
    ]
    grams.sort()
    keys = grams[:sketch_size]
    all_words = title_words + summary_words
    # Word hashes are ints, cheaper to look up than bytes: only an article with a
    # word that hashes like a number word or weekday pays for the bytes lookup.
    if _MARKER_CRCS.isdisjoint(head) and _MARKER_CRCS.isdisjoint(lede):
        markers = _NO_MARKERS
    else:
        markers = _MARKER_WORDS.intersection(all_words)
    numbers = [*filter(bytes.isdigit, all_words)]
    if numbers:
        markers = markers.union(map(bytes.lstrip, numbers, repeat(b"0")))
        if b"" in markers:
            markers = markers.difference(_ZERO).union([b"0"])
    # Held packed: a tuple of ~80 hashes holds ~80 int objects, 2.7 KB an article,
    # 135 MB for the 50,000 of a 1,000-feed window; packed, 0.3 KB.
    return shingles, held, markers, _held_markers(markers) if markers else (), keys


# Markers as held are shared: thousands of held articles say "monday" or "3", and a
# bytes object of their own would cost each ~37 bytes a marker. Cleared when large
# (numbers are unbounded); a marker is then just not shared with older ones.
_MARKER_OBJECTS: dict[bytes, bytes] = {}
_MAX_MARKER_OBJECTS = 65536


def _unpacked_keys(packed: bytes) -> list[int]:
    """A sketch's index keys, as the list `add` looks up and inserts."""
    return memoryview(packed).cast(_HASH_FORMAT).tolist()


def _held_markers(markers: Iterable[bytes]) -> tuple[bytes, ...]:
    if len(_MARKER_OBJECTS) > _MAX_MARKER_OBJECTS:
        _MARKER_OBJECTS.clear()
    return tuple(map(_MARKER_OBJECTS.setdefault, markers, markers))


# A sketch is what `add` and `load` need of an article's text, as bytes to store with
# it: the version byte, the number of bigram hashes, the number of index keys, the
# bigram hashes as held (32-bit, native byte order, which is little-endian wherever a
# sketch is written: elsewhere there are none), the index keys (64-bit, likewise), and
# the markers separated by spaces. Computed once, where the article's feed is parsed
# (mostly another process; `feed_sketches` leaves out what most of the feed's entries
# carry, which the article's text alone does not show), it spares the clustering
# step, and every reload of the window, the fingerprint: three quarters of the time
# `add` spends on an article.
# Bump the version whenever `_fingerprint` would give other values for the same text:
# sketches of another version are ignored and the text fingerprinted instead.
_SKETCH_VERSION = b"\x03" if sys.byteorder == "little" else None
# A clusterer of at most the default sketch size reads nothing but the sketch of an
# article whose stored sketch starts with this: storage may leave its title and
# summary empty (a reloaded window is ~25 MB of text, none of it needed).
SKETCH_PREFIX: bytes | None = _SKETCH_VERSION


def sketch(title: str, summary: str) -> bytes | None:
    """The stored form of an article's signature (None where sketches are not written)."""
    if _SKETCH_VERSION is None:
        return None
    return _sketch_bytes(_fingerprint(title, summary, DEFAULT_SKETCH_SIZE))


def feed_sketches(entries: Sequence[tuple[str, str]]) -> list[bytes | None]:
    """The sketches of one feed's entries, given as (title, summary): each entry's
    `sketch`, but without the runs of words that most of the feed's titles, or most of
    its summaries, begin or end with (see `_BOILERPLATE_MIN_WORDS`)."""
    if _SKETCH_VERSION is None:
        return [None] * len(entries)
    if len(entries) < _BOILERPLATE_MIN_ENTRIES:
        return [sketch(title, summary) for title, summary in entries]
    titles = _without_boilerplate([_words(title)[:_BOILERPLATE_SCAN_WORDS] for title, _ in entries])
    summaries = _without_boilerplate(
        [_summary_words(summary, _BOILERPLATE_SCAN_WORDS) for _, summary in entries]
    )
    return [
        _sketch_bytes(
            _fingerprint_words(
                title[:_MAX_TITLE_WORDS], summary[:_MAX_SUMMARY_WORDS], DEFAULT_SKETCH_SIZE
            )
        )
        for title, summary in zip(titles, summaries, strict=True)
    ]


# A run of words that most entries of one feed begin or end with (a newsletter plug,
# a copyright line, "Read more at ...", the outlet's name after each title) is the
# outlet's, not the story's. Two different stories of one outlet share it, and where
# summaries are short it alone lifts their similarity over the threshold: 40 stories
# of one feed, each summary ending in the same 27-word sign-off, were one story. Such a
# run of at least _BOILERPLATE_MIN_WORDS words, carried by at least half of a feed's
# entries and by _BOILERPLATE_MIN_ENTRIES of them, stays out of the sketches of the
# entries that carry it. (An article clustered from its text has no feed beside it;
# every article a poll stores comes with its sketch.)
_BOILERPLATE_MIN_WORDS = 3
_BOILERPLATE_MIN_ENTRIES = 3
# Words of a title or summary looked at, from its start. A run at the end of a longer
# one lies past the words that go into its signature; and the whole feed's lists are
# held at once, which this bounds (a 20 MB feed's text as word objects is ~20 times
# the text).
_BOILERPLATE_SCAN_WORDS = 2 * max(_MAX_TITLE_WORDS, _MAX_SUMMARY_WORDS)


def _without_boilerplate(word_lists: list[list[bytes]]) -> list[list[bytes]]:
    """`word_lists` without the run of words that most of them begin with, then
    without the one that most of them end with (each where it is long enough)."""
    need = max(_BOILERPLATE_MIN_ENTRIES, (len(word_lists) + 1) // 2)
    if len(word_lists) < need:
        return word_lists
    out = list(word_lists)
    for at_end in (False, True):
        length, carriers = _shared_run(out, need, at_end)
        if length >= _BOILERPLATE_MIN_WORDS:
            for i in carriers:
                out[i] = out[i][:-length] if at_end else out[i][length:]
    return out


def _shared_run(word_lists: list[list[bytes]], need: int, at_end: bool) -> tuple[int, list[int]]:
    """The length of the longest run of words that at least `need` of `word_lists`
    begin with (`at_end`: end with), and the indices of the lists that carry it.

    Grown a word at a time, taking the word most of the lists that carry the run so
    far have next (the greater word on a tie: the same run in any entry order)."""
    carriers = list(range(len(word_lists)))
    length = 0
    while True:
        at = -1 - length if at_end else length
        counts = collections.Counter(
            word_lists[i][at] for i in carriers if len(word_lists[i]) > length
        )
        if not counts:
            break
        count, word = max((n, w) for w, n in counts.items())
        if count < need:
            break
        carriers = [
            i for i in carriers if len(word_lists[i]) > length and word_lists[i][at] == word
        ]
        length += 1
    return length, carriers


def _sketch_bytes(fingerprint: _Fingerprint) -> bytes:
    assert _SKETCH_VERSION is not None  # sketches are written only where there is one
    _, held, _, markers, keys = fingerprint
    return b"".join(
        (
            _SKETCH_VERSION,
            bytes((len(held) // _HELD_SIZE, len(keys))),
            held,
            _PACKERS[len(keys)](*keys),
            b" ".join(sorted(markers)),
        )
    )


def _from_sketch(
    sketch: bytes | None, sketch_size: int
) -> tuple[bytes, tuple[bytes, ...], bytes] | None:
    """The held hashes, markers and packed index keys of a sketch; None unless it is
    of the current version and has at least `sketch_size` keys where the text has."""
    if sketch is None or _SKETCH_VERSION is None or sketch[:1] != _SKETCH_VERSION:
        return None
    hashes_end = 3 + sketch[1] * _HELD_SIZE
    stored_keys = sketch[2]
    if sketch_size > stored_keys and stored_keys == DEFAULT_SKETCH_SIZE:
        return None  # a clusterer with a larger sketch: it needs more keys than stored
    keys_end = hashes_end + min(sketch_size, stored_keys) * _KEY_SIZE
    return (
        sketch[3:hashes_end],
        _held_markers(sketch[hashes_end + stored_keys * _KEY_SIZE :].split()),
        sketch[hashes_end:keys_end],
    )


def similarity(a: Signature, b: Signature) -> float:
    """Jaccard similarity of the two bigram sets."""
    inter = len(a.shingles & b.shingles)
    union = len(a.shingles) + len(b.shingles) - inter
    return inter / union if union else 0.0


def is_near_duplicate(
    a: Signature,
    b: Signature,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_shingles: int = DEFAULT_MIN_SHINGLES,
) -> bool:
    """The edge test of the story graph, without the time window."""
    if len(a.shingles) < min_shingles or len(b.shingles) < min_shingles:
        return False
    if (a.markers - b.markers) and (b.markers - a.markers):
        return False
    inter = len(a.shingles & b.shingles)
    # the same comparison as StoryClusterer's hot loop, so both agree to the last bit
    return inter >= threshold * (len(a.shingles) + len(b.shingles) - inter)


# A held article: (article id, published_at as a POSIX timestamp, bigram hashes
# (distinct, packed 32-bit), markers). Its index keys are only in the index (and in
# the wire-copy cache): nothing else needs them once it is inserted.
_Record = tuple[int, float, bytes, tuple[bytes, ...]]
_SERIAL = struct.Struct("Q")  # native, as memoryview.cast("Q") reads it back
_pack_serial = _SERIAL.pack
# A posting entry is a serial shifted left, over a Bloom mask of the article's markers
# (one of `_MASK_BITS` bits a marker). Most candidates an index finds are vetoed for
# their markers (on the bench feeds, 94%: common phrases, other numbers); the masks
# rule out most of those before their records are fetched. Only a sure veto is
# taken from them: where A's markers are a subset of B's, A's mask is a subset of
# B's, so masks that are not subsets of each other mean markers that are not either.
# Ten bits keep the entries of a million insertions under 2**30, one-digit ints,
# which sort and hash fastest (with 20 bits, clustering took 10% more instructions
# than without masks).
_MASK_BITS = 10
_MASK = (1 << _MASK_BITS) - 1


def _marker_mask(markers: Iterable[bytes]) -> int:
    # hash() of bytes is cached in the object, and held markers are shared objects
    mask = 0
    for marker in markers:
        mask |= 1 << hash(marker) % _MASK_BITS
    return mask


_append = operator.add  # posting bytes + one packed entry: a new bytes object
_NO_STORIES: frozenset[int] = frozenset()
# Wire copies: the (title, summary) of recently added articles, to the serial of the
# last one, whose record holds the rest of the signature, and its index keys. Texts
# longer than this are left out (the cache keeps them alive), and so are empty ones
# (an article given by its sketch alone, whose text storage left out); between one and
# two generations are remembered.
_COPY_TEXT_CHARS = _SUMMARY_HEAD_CHARS
_COPY_GENERATION = 1024


class _Full(bytes):
    """The posting list of a boilerplate key: held by more than `_MAX_POSTING`
    articles of one index partition, from more than `_MAX_OPEN_LIST_STORIES` stories.

    Empty, so that joined with the other lists it adds no candidates (the key is
    boilerplate, not evidence), and appending leaves it as it is: a list only grows
    until its partition is dropped, so once over the bound it stays over it until then.
    """

    __slots__ = ()

    def __add__(self, other: object, /) -> bytes:
        return self


_FULL = _Full()


@dataclass(slots=True)
class _Story:
    key: int
    representative: tuple[datetime, int]
    # A list: most stories are one article, and a list of one is a quarter of a set.
    members: list[int] = field(default_factory=list)


class StoryClusterer:
    """Incremental story clustering over a sliding time window (order-independent
    but for boilerplate keys: see the module docstring).

    Holds only the articles inside the window; `load` restores them from storage
    after a restart, `add` assigns new ones, `evict` forgets the old ones.
    """

    def __init__(
        self,
        *,
        window: timedelta = DEFAULT_WINDOW,
        threshold: float = DEFAULT_THRESHOLD,
        min_shingles: int = DEFAULT_MIN_SHINGLES,
        sketch_size: int = DEFAULT_SKETCH_SIZE,
        min_shared_keys: int = DEFAULT_MIN_SHARED_KEYS,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if window <= timedelta(0):
            raise ValueError(f"window must be positive, got {window}")
        if min_shared_keys < 1:
            raise ValueError(f"min_shared_keys must be at least 1, got {min_shared_keys}")
        self.window = window
        self.threshold = threshold
        self.min_shingles = min_shingles
        self.sketch_size = sketch_size
        self.min_shared_keys = min_shared_keys
        # Per held article: its story, and its record (article id, published_at as
        # a POSIX timestamp, bigram hashes, markers) under a serial. Only
        # atomic values and tuples of them, which the cyclic GC stops tracking: the
        # window would otherwise be traversed by every collection.
        self._story_of: dict[int, int] = {}
        self._live: dict[int, _Record] = {}
        self._serial = 0
        # The index, in partitions of publication time `window` long (partition
        # number: POSIX timestamp // window): in each, index key -> the entries (serial
        # and marker mask) of the partition's articles holding it, 8 native bytes each,
        # as bytes (invisible to the GC) replaced by a longer copy on each append: one
        # allocation, and looking up a missing key creates nothing. An article's
        # neighbours are in its own partition or the two beside it. Evicted articles'
        # entries stay (a dead serial is skipped) until their whole partition has left
        # the window, which `evict` then drops at once: never more than two windows'
        # worth, and no posting list is visited to clean it. Posting entries name
        # insertions, not articles, so an article evicted and added again cannot meet
        # the entries of its first stay.
        self._span = window.total_seconds()
        self._partitions: dict[int, dict[int, bytes]] = {}
        self._stories: dict[int, _Story] = {}
        # (published_at timestamp, article id, serial) of each held article: in
        # arrival order while publication times do not go back (the usual case:
        # appending to and popping from a deque), the others in a heap.
        self._expiry: collections.deque[tuple[float, int, int]] = collections.deque()
        self._late: list[tuple[float, int, int]] = []
        # Wire copies are carried verbatim by several outlets: a recent copy's
        # record gives the signature without computing it again.
        self._copies: dict[tuple[str, str], tuple[int, list[int]]] = {}
        self._older_copies: dict[tuple[str, str], tuple[int, list[int]]] = {}

    def __len__(self) -> int:
        """How many articles are held (inside the window)."""
        return len(self._story_of)

    @property
    def story_count(self) -> int:
        return len(self._stories)

    def story_of(self, article_id: int) -> int | None:
        """The story key of a held article, or None if it is not held."""
        return self._story_of.get(article_id)

    def story(self, key: int) -> StoryInfo | None:
        """What the clusterer knows of a story, or None once all its articles left."""
        story = self._stories.get(key)
        if story is None:
            return None
        published_at, article_id = story.representative
        return StoryInfo(key, article_id, published_at, frozenset(story.members))

    def load(
        self,
        known: Iterable[tuple[StoryCandidate, int]],
        representatives: Mapping[int, tuple[int, datetime]] | None = None,
    ) -> None:
        """Restore held state: articles of the window with their stored story keys.

        The stored partition is trusted, not recomputed. `representatives` maps a
        story key to its stored (representative article id, published_at), which
        may lie outside the window; without it the earliest loaded article stands in.
        """
        reps = representatives or {}
        story_of = self._story_of
        stories = self._stories
        for candidate, key in known:
            article_id = candidate.article_id
            if article_id in story_of:
                continue
            published_at = candidate.published_at
            own = (published_at, article_id)
            story = stories.get(key)
            if story is None:
                rep_id, rep_at = reps.get(key, (article_id, published_at))
                story = stories[key] = _Story(key, (rep_at, rep_id))
            if own < story.representative:
                story.representative = own
            text = (candidate.title, candidate.summary)
            _, shingles, _, markers, keys = self._signature(text, candidate.sketch)
            self._insert(article_id, published_at.timestamp(), shingles, markers, keys, text)
            story_of[article_id] = story.key
            story.members.append(article_id)

    def add(self, items: Sequence[StoryCandidate]) -> list[StoryAssignment]:
        """Assign each new article to a story; articles already held are reported as they are."""
        raw: list[tuple[int, int, tuple[int, ...]]] = []
        renamed: dict[int, int] = {}
        story_of = self._story_of
        stories = self._stories
        partitions = self._partitions
        span = self._span
        live = self._live
        expiry = self._expiry
        copies = self._copies
        live_get = live.get
        sketch_size = self.sketch_size
        neighbour_stories = self._neighbour_stories
        min_entries = _SERIAL.size * self.min_shared_keys
        for candidate in items:
            article_id = candidate.article_id
            key = story_of.get(article_id)
            if key is not None:
                raw.append((article_id, key, ()))
                continue
            text = (candidate.title, candidate.summary)
            # The signature: from the stored sketch, or a held wire copy's record
            # (`_signature`, inline), or else from the text.
            stored = _from_sketch(candidate.sketch, sketch_size)
            if stored is not None:
                shingle_set = None
                shingles, held_markers, packed_keys = stored
                markers = frozenset(held_markers) if held_markers else _NO_MARKERS
                keys = _unpacked_keys(packed_keys)
            else:
                copy = copies.get(text)
                if copy is None:
                    copy = self._older_copies.get(text)
                record = None if copy is None else live_get(copy[0])
                if copy is not None and record is not None:
                    shingle_set = None
                    _, _, shingles, held_markers = record
                    markers = frozenset(held_markers) if held_markers else _NO_MARKERS
                    keys = copy[1]
                else:
                    shingle_set, shingles, markers, held_markers, keys = _fingerprint(
                        text[0], text[1], sketch_size
                    )
            published_at = candidate.published_at
            at = published_at.timestamp()
            # Each key's posting bytes (b"" where missing) in the article's partition,
            # and all their entries there and in the partitions beside it in C-level
            # joins: with fewer than min_shared entries in all, no held article can
            # share min_shared keys with this one.
            part = int(at // span)
            postings = partitions.setdefault(part, {})
            lists = [*map(postings.get, keys, repeat(b""))]
            entries = b"".join(lists)
            earlier = partitions.get(part - 1)
            if earlier:
                entries += b"".join(map(earlier.get, keys, repeat(b"")))
            later = partitions.get(part + 1)
            if later:
                entries += b"".join(map(later.get, keys, repeat(b"")))
            mask = _marker_mask(held_markers) if held_markers else 0
            neighbours = (
                neighbour_stories(at, shingle_set, shingles, markers, mask, entries)
                if len(entries) >= min_entries
                else _NO_STORIES
            )
            # The usual cases, a new story or joining the one story of earlier
            # articles, inline; `_join` does the same and everything else.
            merged: tuple[int, ...] = ()
            if article_id in stories:  # re-added after eviction
                story, merged = self._join(candidate, neighbours)
            elif not neighbours:
                story = stories[article_id] = _Story(article_id, (published_at, article_id))
            elif len(neighbours) == 1 and (only := min(neighbours)) < article_id:
                story = stories[only]
                own = (published_at, article_id)
                if own < story.representative:
                    story.representative = own
            else:
                story, merged = self._join(candidate, neighbours)
            for old in merged:
                renamed[old] = story.key
            # `_insert`, inline: each list replaced by itself plus the new entry.
            serial = self._serial = self._serial + 1
            entry = _pack_serial(serial << _MASK_BITS | mask)
            postings.update(zip(keys, map(_append, lists, repeat(entry))))  # noqa: B905
            # one of them may just have passed the bound
            if max(map(len, lists), default=0) >= _MAX_POSTING_BYTES:
                self._close_boilerplate_lists(postings, keys)
            live[serial] = (article_id, at, shingles, held_markers)
            if not expiry or at >= expiry[-1][0]:
                expiry.append((at, article_id, serial))
            else:
                heapq.heappush(self._late, (at, article_id, serial))
            if 0 < len(text[0]) + len(text[1]) <= _COPY_TEXT_CHARS:
                if len(copies) >= _COPY_GENERATION:
                    self._older_copies = copies
                    self._copies = copies = {}
                copies[text] = (serial, keys)
            story_of[article_id] = story.key
            story.members.append(article_id)
            raw.append((article_id, story.key, merged))
        out = []
        for article_id, key, merged in raw:
            while key in renamed:
                key = renamed[key]
            out.append(StoryAssignment(article_id, key, stories[key].representative[1], merged))
        return out

    def evict(self, now: datetime) -> None:
        """Forget articles published more than `window` before `now`.

        They can no longer be near-duplicates of an article published at `now` or
        later. An article that arrives later than `window` after publication may
        miss an evicted neighbour: order independence holds within that bound.
        """
        horizon = (now - self.window).timestamp()
        expiry = self._expiry
        late = self._late
        gone = []
        while expiry and expiry[0][0] < horizon:
            gone.append(expiry.popleft())
        while late and late[0][0] < horizon:
            gone.append(heapq.heappop(late))
        story_pop = self._story_of.pop
        live_pop = self._live.pop
        stories = self._stories
        for _, article_id, serial in gone:
            # Its posting entries stay behind until its partition is dropped (a dead
            # serial is skipped when found): removing them would visit sixteen cold lists.
            live_pop(serial)
            key = story_pop(article_id)
            members = stories[key].members
            members.remove(article_id)
            if not members:
                del stories[key]
        # Partition p holds articles published in [p * span, (p + 1) * span): once
        # that ends at or before the horizon, they have all been evicted.
        last_gone = int(horizon // self._span) - 1
        for part in [p for p in self._partitions if p <= last_gone]:
            del self._partitions[part]

    def _signature(
        self, text: tuple[str, str], stored_sketch: bytes | None
    ) -> tuple[frozenset[int] | None, bytes, frozenset[bytes], tuple[bytes, ...], list[int]]:
        """The signature of (title, summary): from its stored sketch, or a held copy's
        record, or else the text (`add` does the same inline).

        Without the text's fingerprint, the set of bigram hashes is left to
        `_neighbour_stories` to build, if it needs it at all.
        """
        stored = _from_sketch(stored_sketch, self.sketch_size)
        if stored is not None:
            held, markers, packed_keys = stored
            keys = _unpacked_keys(packed_keys)
        else:
            copy = self._copies.get(text)
            if copy is None:
                copy = self._older_copies.get(text)
            record = None if copy is None else self._live.get(copy[0])
            if copy is None or record is None:
                return _fingerprint(text[0], text[1], self.sketch_size)
            _, _, held, markers = record
            keys = copy[1]
        return None, held, frozenset(markers) if markers else _NO_MARKERS, markers, keys

    def _insert(
        self,
        article_id: int,
        at: float,
        shingles: bytes,
        markers: tuple[bytes, ...],
        keys: list[int],
        text: tuple[str, str],
    ) -> None:
        # As in `add`: each of its keys' posting bytes in its partition replaced by
        # itself plus this serial.
        serial = self._serial = self._serial + 1
        postings = self._partitions.setdefault(int(at // self._span), {})
        lists = [*map(postings.get, keys, repeat(b""))]
        entry = _pack_serial(serial << _MASK_BITS | _marker_mask(markers))
        postings.update(zip(keys, map(_append, lists, repeat(entry))))  # noqa: B905
        # one of them may just have passed the bound
        if max(map(len, lists), default=0) >= _MAX_POSTING_BYTES:
            self._close_boilerplate_lists(postings, keys)
        self._live[serial] = (article_id, at, shingles, markers)
        expiry = self._expiry
        if not expiry or at >= expiry[-1][0]:
            expiry.append((at, article_id, serial))
        else:
            heapq.heappush(self._late, (at, article_id, serial))
        if 0 < len(text[0]) + len(text[1]) <= _COPY_TEXT_CHARS:
            if len(self._copies) >= _COPY_GENERATION:
                self._older_copies = self._copies
                self._copies = {}
            self._copies[text] = (serial, keys)

    def _close_boilerplate_lists(self, postings: dict[int, bytes], keys: Iterable[int]) -> None:
        """Close the lists of `keys` that have just passed a multiple of the bound and
        name articles of more than `_MAX_OPEN_LIST_STORIES` stories, fewer than
        `_OPEN_LIST_COPIES` a story (or hold `_MAX_OPEN_LIST` entries): those keys are
        boilerplate.

        A list whose articles are copies of a few stories is a story carried by many
        outlets: it stays open, so that the next copy finds them.
        """
        live_get = self._live.get
        story_of_get = self._story_of.get
        for key in keys:
            count = len(postings[key]) // _SERIAL.size
            if count <= _MAX_POSTING or count % _MAX_POSTING != 1:
                continue  # within the bound, or checked when it last passed a multiple
            if count < _MAX_OPEN_LIST:
                stories = set()
                for entry in memoryview(postings[key]).cast("Q").tolist():
                    record = live_get(entry >> _MASK_BITS)
                    if record is not None:
                        stories.add(story_of_get(record[0]))
                stories.discard(None)
                if len(stories) <= max(_MAX_OPEN_LIST_STORIES, count // _OPEN_LIST_COPIES):
                    continue
            postings[key] = _FULL

    def _neighbour_stories(
        self,
        at: float,
        shingle_set: frozenset[int] | None,
        shingles: bytes,
        markers: frozenset[bytes],
        mask: int,
        entries: bytes,
    ) -> AbstractSet[int]:
        # is_near_duplicate inlined, cheapest tests first: this loop is the hot path.
        size = len(shingles) // _HELD_SIZE
        if size < self.min_shingles:
            return _NO_STORIES
        # The entries on at least `min_shared` of the lists, found with C-level calls
        # only: in the sorted concatenation an entry is on min_shared of them when it
        # fills min_shared consecutive places, hence is at an index of every residue
        # modulo min_shared; any other entry misses one. (A key that hundreds of
        # held articles share is boilerplate, not evidence: its list is _FULL, empty.)
        ids = memoryview(entries).cast("Q").tolist()
        ids.sort()
        step = self.min_shared_keys
        if step == 2:  # the default, without the generator
            found = set(ids[::2]).intersection(ids[1::2])
        else:
            found = set(ids[::step]).intersection(*(ids[r::step] for r in range(1, step)))
        if not found:
            return _NO_STORIES
        stories: set[int] = set()
        threshold = self.threshold
        min_size = max(self.min_shingles, size * threshold)
        max_size = size / threshold
        window = self.window.total_seconds()
        live_get = self._live.get
        story_of = self._story_of
        n_markers = len(markers)
        for entry in found:
            # The conflict veto first: candidates found through common phrases ("on
            # Monday after") mostly differ in a number or weekday. Their masks show
            # most of those at once (see _MASK_BITS).
            if mask:
                other_mask = entry & _MASK
                if mask & ~other_mask and other_mask & ~mask:
                    continue
            other = live_get(entry >> _MASK_BITS)
            if other is None:
                continue  # evicted
            # Neither set of markers holds the other. Held markers are distinct: when
            # the other's are no more than ours and not among them, ours cannot all
            # be among its.
            other_markers = other[3]
            if (
                markers
                and not markers.issuperset(other_markers)
                and (len(other_markers) <= n_markers or markers.difference(other_markers))
            ):
                continue
            other_story = story_of[other[0]]
            if other_story in stories or abs(other[1] - at) > window:
                continue  # already a neighbour story, or too far apart
            other_shingles = other[2]
            if other_shingles is shingles:
                stories.add(other_story)  # a wire copy: the signature of its record
                continue
            other_size = len(other_shingles) // _HELD_SIZE
            # Jaccard >= t needs the smaller set to be at least t times the larger.
            if not min_size <= other_size <= max_size:
                continue
            if shingle_set is None:
                shingle_set = frozenset(_held_hashes(shingles))
            inter = len(shingle_set.intersection(_held_hashes(other_shingles)))
            if inter >= threshold * (size + other_size - inter):
                stories.add(other_story)
        return stories

    def _join(
        self, candidate: StoryCandidate, keys: AbstractSet[int]
    ) -> tuple[_Story, tuple[int, ...]]:
        own = (candidate.published_at, candidate.article_id)
        if candidate.article_id in self._stories:
            # re-added after eviction: it still names the story it started
            keys = {*keys, candidate.article_id}
        if not keys:
            # its own story; `add` makes it a member, as of any story it joins
            story = self._stories[candidate.article_id] = _Story(candidate.article_id, own)
            return story, ()
        survivor_key = min(min(keys), candidate.article_id)
        stories = [self._stories[k] for k in keys]
        # The biggest member set absorbs the others, so merging costs the smaller side.
        base = max(stories, key=lambda s: (len(s.members), -s.key))
        representative = min([own, *(s.representative for s in stories)])
        story_of = self._story_of
        for story in stories:
            if story is base:
                continue
            story_of.update(dict.fromkeys(story.members, survivor_key))
            base.members += story.members
            del self._stories[story.key]
        if base.key != survivor_key:
            story_of.update(dict.fromkeys(base.members, survivor_key))
            del self._stories[base.key]
            base.key = survivor_key
            self._stories[survivor_key] = base
        base.representative = representative
        merged = tuple(sorted(k for k in keys if k != survivor_key))
        return base, merged
