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

A story is a connected component of that near-duplicate graph. Components depend
only on the set of articles, never on arrival order, and an arrival only ever adds
edges, so `add` is incremental: it finds the new article's neighbours through a
small index and unions their stories. Single-link chaining could join two events
through a bridge article; the strict threshold and the conflict veto keep the
edges precise enough that we prefer this to order-dependent schemes such as
"attach to the nearest representative" (see `tests/data/story_pairs.jsonl`).

Candidates come from a bottom-k sketch: every article indexes its `sketch_size`
smallest bigram hashes (stopword-only bigrams such as "of the" excluded: they
would make long posting lists), and only articles sharing at least
`min_shared_keys` of them are verified. Each of the bottom-16 hashes of the union
of two bigram sets lies in their intersection with probability J, so a pair at
J = 0.4 shares two keys with probability about 0.997 (0.9999 at J = 0.6).
Requiring two shared keys rather than one cuts the verifications on a realistic
stream to about one per article. Bigram hashes are stable (a tuple hash of CRC-32
word hashes), so the candidate pairs, and hence the stories, are the same in
every process. Each candidate is then verified exactly.

Identity: a story's key is the smallest article id it has ever contained (ids grow
with arrival, so the key of a growing story never changes); when stories merge the
smallest key survives. The representative is the earliest published article, ties
broken by the smaller article id. Memory holds only the articles inside the window
(`evict`); a story whose articles were all evicted is forgotten. The index keeps an
evicted article's entries (they are skipped) until twice the window's worth of
evictions, then is rebuilt from the held articles: bounded by the window, and
eviction never visits cold posting lists. Held state is tuples of atomic values and
bytearrays, which the cyclic GC does not traverse: collections stay cheap however
large the window.
"""

from __future__ import annotations

import collections
import heapq
import html
import itertools
import operator
import re
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import repeat

from watch.normalize import fold

__all__ = [
    "DEFAULT_MIN_SHARED_KEYS",
    "DEFAULT_MIN_SHINGLES",
    "DEFAULT_SKETCH_SIZE",
    "DEFAULT_THRESHOLD",
    "DEFAULT_WINDOW",
    "Signature",
    "StoryAssignment",
    "StoryCandidate",
    "StoryClusterer",
    "StoryInfo",
    "fingerprint",
    "is_near_duplicate",
    "similarity",
]

# Chosen on tests/data/story_pairs.jsonl: 0.40 is the lowest threshold at which no
# pair of different events merges (the closest different-event pair scores 0.36);
# recall there is 0.79. See tests/test_cluster.py::test_labelled_pairs_*.
# Posting lists longer than this (in 8-byte serials: 256 articles) are skipped as boilerplate.
_MAX_POSTING_BYTES = 8 * 256
DEFAULT_THRESHOLD = 0.40
DEFAULT_WINDOW = timedelta(hours=72)
DEFAULT_MIN_SHINGLES = 6
DEFAULT_SKETCH_SIZE = 16
DEFAULT_MIN_SHARED_KEYS = 2
_MAX_TITLE_WORDS = 40
_MAX_SUMMARY_WORDS = 50
_SUMMARY_HEAD_CHARS = 4000
_MIN_SWEEP = 1024  # evictions between two rebuilds of the index: at least twice this

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
_STOPWORDS = _word_set(
    "a an the of in on at to for and or by with from as is was were be been has have had "
    "it its this that these those after over into up out but not are will would said says "
    "say than then there their he she they his her we you i who which what when where"
)


@dataclass(frozen=True, slots=True)
class StoryCandidate:
    """What clustering needs of a stored article. `summary` may be sanitized HTML."""

    article_id: int
    published_at: datetime
    title: str
    summary: str
    source: str = ""


@dataclass(frozen=True, slots=True)
class Signature:
    """The near-duplicate signature of one article's title and summary.

    `shingles`: stable 64-bit hashes of the word bigrams; `markers`: the numbers,
    number words and weekdays (the conflict check); `keys`: the bottom-k index keys.
    Computed from the text in about 20 µs, so storage need not persist it.
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


def _summary_words(summary: str) -> list[bytes]:
    if len(summary) > _SUMMARY_HEAD_CHARS:
        # A full article in the summary: the lede is in its head. Cleaning and
        # splitting only the head gives the same first words when it has more than
        # enough of them: what the cut spoils (a word, an entity) is at the very end.
        head = summary[:_SUMMARY_HEAD_CHARS]
        if head.rfind("<") > head.rfind(">"):
            head = head[: head.rfind("<")]  # a tag cut in two would leave words behind
        head_words = _words(_plain(head))
        if len(head_words) > _MAX_SUMMARY_WORDS + 2:
            return head_words[:_MAX_SUMMARY_WORDS]
    return _words(_plain(summary))[:_MAX_SUMMARY_WORDS]


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
_STOP_BIGRAMS = frozenset(hash((_crc32(a), _crc32(b))) for a in _STOPWORDS for b in _STOPWORDS)


def fingerprint(title: str, summary: str, *, sketch_size: int = DEFAULT_SKETCH_SIZE) -> Signature:
    """The signature of an article: bigram hashes, conflict markers, index keys."""
    shingles, markers, keys = _fingerprint(title, summary, sketch_size)
    return Signature(shingles, markers, tuple(keys))


def _fingerprint(
    title: str, summary: str, sketch_size: int
) -> tuple[frozenset[int], frozenset[bytes], list[int]]:
    title_words = _words(title)[:_MAX_TITLE_WORDS]
    # The lede is what copies of one story share; some feeds put the whole article
    # in the summary, which would cost time and memory and dilute the similarity.
    summary_words = _summary_words(summary)
    # Bigrams stay inside a field: the title's last word and the summary's first are
    # not a phrase, and outlets that retitle a story would pay for it twice.
    head = [*map(_crc32, title_words)]
    lede = [*map(_crc32, summary_words)]
    # zip hands `hash` the same pair tuple again once it is released (pairwise
    # allocates one per bigram); the hash of a pair is that of a fresh tuple.
    shingles = frozenset(
        [*map(hash, zip(head, head[1:])), *map(hash, zip(lede, lede[1:]))]  # noqa: B905, RUF007
    )
    all_words = title_words + summary_words
    markers = _MARKER_WORDS.intersection(all_words)
    numbers = [*filter(bytes.isdigit, all_words)]
    if numbers:
        markers = markers.union(w.lstrip(b"0") or b"0" for w in numbers)
    # Stopword-only bigrams ("of the") would put most articles on one posting list.
    keys = sorted(shingles - _STOP_BIGRAMS)[:sketch_size]
    return shingles, markers, keys


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


# A held article: (article id, published_at as a POSIX timestamp, bigram hashes,
# markers, index keys). Bigram hashes are distinct: the set they came from.
_Record = tuple[int, float, tuple[int, ...], tuple[bytes, ...], tuple[int, ...]]
_SERIAL = struct.Struct("Q")  # native, as memoryview.cast("Q") reads it back


@dataclass(slots=True)
class _Story:
    key: int
    representative: tuple[datetime, int]
    members: set[int] = field(default_factory=set)


class StoryClusterer:
    """Incremental, order-independent story clustering over a sliding time window.

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
        # a POSIX timestamp, bigram hashes, markers, index keys) under a serial. Only
        # atomic values and tuples of them, which the cyclic GC stops tracking: the
        # window would otherwise be traversed by every collection.
        self._story_of: dict[int, int] = {}
        self._live: dict[int, _Record] = {}
        self._serial = 0
        # Index key -> the serials of the articles holding it, 8 native bytes each:
        # bytearrays grow in place and are invisible to the GC. Posting entries name
        # insertions, not articles, so an article evicted and added again cannot
        # meet the entries of its first stay; those are dropped by a rebuild.
        self._postings: dict[int, bytearray] = {}
        self._removed = 0  # articles evicted since the index was last rebuilt
        self._stories: dict[int, _Story] = {}
        # heap of (published_at timestamp, article id, serial)
        self._expiry: list[tuple[float, int, int]] = []

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
        for candidate, key in known:
            if candidate.article_id in self._story_of:
                continue
            story = self._stories.get(key)
            if story is None:
                rep_id, rep_at = reps.get(key, (candidate.article_id, candidate.published_at))
                story = self._stories[key] = _Story(key, (rep_at, rep_id))
            story.representative = min(
                story.representative, (candidate.published_at, candidate.article_id)
            )
            shingles, markers, keys = _fingerprint(
                candidate.title, candidate.summary, self.sketch_size
            )
            postings = [*map(self._postings.setdefault, keys, iter(bytearray, None))]
            at = candidate.published_at.timestamp()
            self._insert(candidate.article_id, at, shingles, markers, keys, postings)
            self._story_of[candidate.article_id] = story.key
            story.members.add(candidate.article_id)

    def add(self, items: Sequence[StoryCandidate]) -> list[StoryAssignment]:
        """Assign each new article to a story; articles already held are reported as they are."""
        raw: list[tuple[int, int, tuple[int, ...]]] = []
        renamed: dict[int, int] = {}
        story_of = self._story_of
        sketch_size = self.sketch_size
        setdefault = self._postings.setdefault  # the index is only rebuilt by evict
        for candidate in items:
            article_id = candidate.article_id
            key = story_of.get(article_id)
            if key is not None:
                raw.append((article_id, key, ()))
                continue
            shingles, markers, keys = _fingerprint(candidate.title, candidate.summary, sketch_size)
            at = candidate.published_at.timestamp()
            # C-level: each key's posting bytes, created empty where missing (iter
            # with a sentinel calls bytearray() afresh for each key).
            postings = [*map(setdefault, keys, iter(bytearray, None))]
            neighbours = self._neighbour_stories(at, shingles, markers, postings)
            story, merged = self._join(candidate, neighbours)
            for old in merged:
                renamed[old] = story.key
            self._insert(article_id, at, shingles, markers, keys, postings)
            story_of[article_id] = story.key
            story.members.add(article_id)
            raw.append((article_id, story.key, merged))
        stories = self._stories
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
        story_pop = self._story_of.pop
        live_pop = self._live.pop
        stories = self._stories
        heappop = heapq.heappop
        removed = 0
        while expiry and expiry[0][0] < horizon:
            _, article_id, serial = heappop(expiry)
            # Its posting entries stay behind until the next rebuild (a dead serial
            # is skipped when found): removing them would visit sixteen cold lists.
            live_pop(serial)
            removed += 1
            key = story_pop(article_id)
            story = stories[key]
            story.members.discard(article_id)
            if not story.members:
                del stories[key]
        self._removed += removed
        if self._removed > 2 * max(_MIN_SWEEP, len(self._live)):
            self._rebuild_index()

    def _neighbour_stories(
        self,
        at: float,
        shingles: frozenset[int],
        markers: frozenset[bytes],
        postings: list[bytearray],
    ) -> set[int]:
        # is_near_duplicate inlined, cheapest tests first: this loop is the hot path.
        stories: set[int] = set()
        size = len(shingles)
        if size < self.min_shingles:
            return stories
        min_shared = self.min_shared_keys
        # A key that hundreds of held articles share is boilerplate ("read more on",
        # a site's tagline), not evidence: its list would make every article a
        # candidate of every other (quadratic). Matching needs min_shared other keys.
        lists = [p for p in postings if p and len(p) <= _MAX_POSTING_BYTES]
        if len(lists) < min_shared:
            return stories
        # The serials on at least `min_shared` of the lists, found with C-level calls
        # only: in the sorted concatenation, a serial that many times over is equal to
        # the one min_shared - 1 places on.
        ids = sorted(memoryview(b"".join(lists)).cast("Q"))
        found = set(
            itertools.compress(
                ids, map(operator.eq, ids, itertools.islice(ids, min_shared - 1, None))
            )
        )
        if not found:
            return stories
        threshold = self.threshold
        min_size = max(self.min_shingles, size * threshold)
        max_size = size / threshold
        window = self.window.total_seconds()
        live_get = self._live.get
        story_of = self._story_of
        for serial in found:
            other = live_get(serial)
            if other is None:
                continue  # evicted
            other_story = story_of[other[0]]
            if other_story in stories or abs(other[1] - at) > window:
                continue  # already a neighbour story, or too far apart
            other_shingles = other[2]
            other_size = len(other_shingles)
            # Jaccard >= t needs the smaller set to be at least t times the larger.
            if not min_size <= other_size <= max_size:
                continue
            other_markers = other[3]
            if markers.difference(other_markers) and not markers.issuperset(other_markers):
                continue
            inter = len(shingles.intersection(other_shingles))
            if inter >= threshold * (size + other_size - inter):
                stories.add(other_story)
        return stories

    def _join(self, candidate: StoryCandidate, keys: set[int]) -> tuple[_Story, tuple[int, ...]]:
        own = (candidate.published_at, candidate.article_id)
        if candidate.article_id in self._stories:
            # re-added after eviction: it still names the story it started
            keys = {*keys, candidate.article_id}
        if not keys:
            story = self._stories[candidate.article_id] = _Story(
                candidate.article_id, own, {candidate.article_id}
            )
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
            base.members |= story.members
            del self._stories[story.key]
        if base.key != survivor_key:
            story_of.update(dict.fromkeys(base.members, survivor_key))
            del self._stories[base.key]
            base.key = survivor_key
            self._stories[survivor_key] = base
        base.representative = representative
        merged = tuple(sorted(k for k in keys if k != survivor_key))
        return base, merged

    def _insert(
        self,
        article_id: int,
        at: float,
        shingles: frozenset[int],
        markers: frozenset[bytes],
        keys: list[int],
        postings: list[bytearray],
    ) -> None:
        serial = self._serial = self._serial + 1
        collections.deque(map(bytearray.extend, postings, repeat(_SERIAL.pack(serial))), maxlen=0)
        self._live[serial] = (article_id, at, tuple(shingles), tuple(markers), tuple(keys))
        heapq.heappush(self._expiry, (at, article_id, serial))

    def _rebuild_index(self) -> None:
        # Evicted serials would otherwise keep every key of history in memory. One
        # C-level pass: every live (key, serial) pair, appended as in `_insert`.
        records = self._live.values()
        keys = [*map(operator.itemgetter(4), records)]
        entries = map(repeat, map(_SERIAL.pack, self._live), map(len, keys))
        postings: dict[int, bytearray] = {}
        collections.deque(
            map(
                bytearray.extend,
                map(
                    postings.setdefault, itertools.chain.from_iterable(keys), iter(bytearray, None)
                ),
                itertools.chain.from_iterable(entries),
            ),
            maxlen=0,
        )
        self._postings = postings
        self._removed = 0
