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
(`evict`); a story whose articles were all evicted is forgotten.
"""

from __future__ import annotations

import heapq
import html
import itertools
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watch.normalize import words

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
DEFAULT_THRESHOLD = 0.40
DEFAULT_WINDOW = timedelta(hours=72)
DEFAULT_MIN_SHINGLES = 6
DEFAULT_SKETCH_SIZE = 16
DEFAULT_MIN_SHARED_KEYS = 2
_MAX_TITLE_WORDS = 40
_MAX_SUMMARY_WORDS = 50

_TAG = re.compile(r"<[^>]*>")
# WordPress appends this to every excerpt; it would make syndicated copies differ.
_WP_FOOTER = re.compile(r"The post .{0,500}? appeared first on .{0,200}$", re.DOTALL)
_WORD = re.compile(r"\w+")


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


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
    markers: frozenset[str]
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


def _words(text: str) -> list[str]:
    # ASCII text is already in NFKC/NFD form and has no combining marks, so
    # lower-casing is the whole normal form: same output as normalize.words, 3x faster.
    if text.isascii():
        return _WORD.findall(text.lower().replace("_", " "))
    return words(text)


def _plain(summary: str) -> str:
    if "<" in summary:
        summary = _TAG.sub(" ", summary)
    if "&" in summary:
        summary = html.unescape(summary)
    if "appeared first on" in summary:
        summary = _WP_FOOTER.sub("", summary)
    return summary


class _WordHashes(dict[str, int]):
    """Stable word hashes (CRC-32), cached: looking one up is a C-level dict hit."""

    def __missing__(self, word: str) -> int:
        if len(self) > 200_000:  # bounded (~25 MB): vocabularies grow without end
            self.clear()
        h = self[word] = zlib.crc32(word.encode())
        return h


_word_hashes = _WordHashes()
# A bigram's hash is the hash of its pair of word hashes: tuples of ints hash the
# same in every process (only str and bytes hashes are salted), on 64-bit CPython.
_STOP_BIGRAMS = frozenset(
    hash((_word_hashes[a], _word_hashes[b])) for a in _STOPWORDS for b in _STOPWORDS
)


def fingerprint(title: str, summary: str, *, sketch_size: int = DEFAULT_SKETCH_SIZE) -> Signature:
    """The signature of an article: bigram hashes, conflict markers, index keys."""
    title_words = _words(title)[:_MAX_TITLE_WORDS]
    # The lede is what copies of one story share; some feeds put the whole article
    # in the summary, which would cost time and memory and dilute the similarity.
    summary_words = _words(_plain(summary))[:_MAX_SUMMARY_WORDS]
    lookup = _word_hashes.__getitem__
    title_hashes = list(map(lookup, title_words))
    summary_hashes = list(map(lookup, summary_words))
    # Bigrams stay inside a field: the title's last word and the summary's first are
    # not a phrase, and outlets that retitle a story would pay for it twice.
    shingles = frozenset(
        itertools.chain(
            map(hash, itertools.pairwise(title_hashes)),
            map(hash, itertools.pairwise(summary_hashes)),
        )
    )
    vocabulary = {*title_words, *summary_words}
    markers = frozenset(
        (vocabulary & _MARKER_WORDS).union(
            w.lstrip("0") or "0" for w in filter(str.isdigit, vocabulary)
        )
    )
    # Stopword-only bigrams ("of the") would put most articles on one posting list.
    keys = tuple(sorted(shingles - _STOP_BIGRAMS)[:sketch_size])
    return Signature(shingles, markers, keys)


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


@dataclass(slots=True)
class _Held:
    at: float  # published_at as a POSIX timestamp: cheaper to compare
    signature: Signature
    story: int


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
        self.window = window
        self.threshold = threshold
        self.min_shingles = min_shingles
        self.sketch_size = sketch_size
        self.min_shared_keys = min_shared_keys
        self._held: dict[int, _Held] = {}
        self._postings: dict[int, list[int]] = {}
        self._stories: dict[int, _Story] = {}
        self._expiry: list[tuple[datetime, int]] = []  # heap of (published_at, article_id)

    def __len__(self) -> int:
        """How many articles are held (inside the window)."""
        return len(self._held)

    @property
    def story_count(self) -> int:
        return len(self._stories)

    def story_of(self, article_id: int) -> int | None:
        """The story key of a held article, or None if it is not held."""
        held = self._held.get(article_id)
        return None if held is None else held.story

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
            if candidate.article_id in self._held:
                continue
            story = self._stories.get(key)
            if story is None:
                rep_id, rep_at = reps.get(key, (candidate.article_id, candidate.published_at))
                story = self._stories[key] = _Story(key, (rep_at, rep_id))
            story.representative = min(
                story.representative, (candidate.published_at, candidate.article_id)
            )
            self._insert(candidate, self._signature(candidate), story)

    def add(self, items: Sequence[StoryCandidate]) -> list[StoryAssignment]:
        """Assign each new article to a story; articles already held are reported as they are."""
        raw: list[tuple[int, int, tuple[int, ...]]] = []
        renamed: dict[int, int] = {}
        for candidate in items:
            held = self._held.get(candidate.article_id)
            if held is not None:
                raw.append((candidate.article_id, held.story, ()))
                continue
            signature = self._signature(candidate)
            keys = self._neighbour_stories(candidate, signature)
            story, merged = self._join(candidate, keys)
            for old in merged:
                renamed[old] = story.key
            self._insert(candidate, signature, story)
            raw.append((candidate.article_id, story.key, merged))
        out = []
        for article_id, key, merged in raw:
            while key in renamed:
                key = renamed[key]
            rep = self._stories[key].representative[1]
            out.append(StoryAssignment(article_id, key, rep, merged))
        return out

    def evict(self, now: datetime) -> None:
        """Forget articles published more than `window` before `now`.

        They can no longer be near-duplicates of an article published at `now` or
        later. An article that arrives later than `window` after publication may
        miss an evicted neighbour: order independence holds within that bound.
        """
        horizon = now - self.window
        expiry = self._expiry
        while expiry and expiry[0][0] < horizon:
            _, article_id = heapq.heappop(expiry)
            held = self._held.pop(article_id, None)
            if held is None:
                continue
            for key in held.signature.keys:
                posting = self._postings[key]
                if len(posting) == 1:
                    del self._postings[key]
                else:
                    posting.remove(article_id)
            story = self._stories[held.story]
            story.members.discard(article_id)
            if not story.members:
                del self._stories[held.story]

    def _signature(self, candidate: StoryCandidate) -> Signature:
        return fingerprint(candidate.title, candidate.summary, sketch_size=self.sketch_size)

    def _neighbour_stories(self, candidate: StoryCandidate, signature: Signature) -> set[int]:
        # is_near_duplicate inlined, cheapest tests first: this loop is the hot path.
        stories: set[int] = set()
        shingles = signature.shingles
        size = len(shingles)
        if size < self.min_shingles:
            return stories
        markers = signature.markers
        threshold = self.threshold
        min_size = max(self.min_shingles, size * threshold)
        max_size = size / threshold
        window = self.window.total_seconds()
        at = candidate.published_at.timestamp()
        held = self._held
        postings = self._postings
        lists = [postings[key] for key in signature.keys if key in postings]
        min_shared = self.min_shared_keys
        if len(lists) < min_shared:
            return stories
        shared = Counter(itertools.chain.from_iterable(lists))
        for other_id, count in shared.items():
            if count < min_shared:
                continue
            other = held[other_id]
            if other.story in stories or abs(other.at - at) > window:
                continue
            other_shingles = other.signature.shingles
            other_size = len(other_shingles)
            # Jaccard >= t needs the smaller set to be at least t times the larger.
            if not min_size <= other_size <= max_size:
                continue
            other_markers = other.signature.markers
            if (markers - other_markers) and (other_markers - markers):
                continue
            inter = len(shingles & other_shingles)
            if inter >= threshold * (size + other_size - inter):
                stories.add(other.story)
        return stories

    def _join(self, candidate: StoryCandidate, keys: set[int]) -> tuple[_Story, tuple[int, ...]]:
        own = (candidate.published_at, candidate.article_id)
        if candidate.article_id in self._stories:
            # re-added after eviction: it still names the story it started
            keys = {*keys, candidate.article_id}
        if not keys:
            story = self._stories[candidate.article_id] = _Story(candidate.article_id, own)
            return story, ()
        survivor_key = min(min(keys), candidate.article_id)
        stories = [self._stories[k] for k in keys]
        # The biggest member set absorbs the others, so merging costs the smaller side.
        base = max(stories, key=lambda s: (len(s.members), -s.key))
        representative = min([own, *(s.representative for s in stories)])
        held = self._held
        for story in stories:
            if story is base:
                continue
            for article_id in story.members:
                held[article_id].story = survivor_key
            base.members |= story.members
            del self._stories[story.key]
        if base.key != survivor_key:
            for article_id in base.members:
                held[article_id].story = survivor_key
            del self._stories[base.key]
            base.key = survivor_key
            self._stories[survivor_key] = base
        base.representative = representative
        merged = tuple(sorted(k for k in keys if k != survivor_key))
        return base, merged

    def _insert(self, candidate: StoryCandidate, signature: Signature, story: _Story) -> None:
        article_id = candidate.article_id
        self._held[article_id] = _Held(candidate.published_at.timestamp(), signature, story.key)
        story.members.add(article_id)
        for key in signature.keys:
            posting = self._postings.get(key)
            if posting is None:
                self._postings[key] = [article_id]
            else:
                posting.append(article_id)
        heapq.heappush(self._expiry, (candidate.published_at, article_id))
