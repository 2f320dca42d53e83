"""StoryClusterer against a plain reference implementation of the same rules.

The clusterer finds candidates through posting bytes it appends to and rebuilds,
reuses the signature of a held wire copy, keeps an expiry deque and a heap for late
articles. The reference applies the rules directly, pair by pair: a new article's
neighbours are the held articles within the window that share `min_shared_keys`
sketch keys with it and are near-duplicates (`is_near_duplicate`); stories keep
the smallest key, the earliest representative, and are forgotten with their last
held article. Streams stay under 256 articles, so no posting list reaches the
boilerplate bound, which the reference does not model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

import watch.cluster
from watch.cluster import (
    Signature,
    StoryAssignment,
    StoryCandidate,
    StoryClusterer,
    fingerprint,
    is_near_duplicate,
)

T0 = datetime(2026, 11, 2, tzinfo=UTC)
WINDOW = timedelta(hours=12)


class Reference:
    def __init__(self, window: timedelta) -> None:
        self.window = window
        self.held: dict[int, tuple[datetime, Signature]] = {}
        self.story_of: dict[int, int] = {}
        self.members: dict[int, set[int]] = {}
        self.representative: dict[int, tuple[datetime, int]] = {}

    def add(self, items: Sequence[StoryCandidate]) -> list[StoryAssignment]:
        merged_by: dict[int, tuple[int, ...]] = {}
        for item in items:
            if item.article_id in self.story_of:
                merged_by.setdefault(item.article_id, ())
                continue
            signature = fingerprint(item.title, item.summary)
            keys = {
                self.story_of[other_id]
                for other_id, (at, other) in self.held.items()
                if abs(at - item.published_at) <= self.window
                and len(set(signature.keys) & set(other.keys)) >= 2
                and is_near_duplicate(signature, other)
            }
            if item.article_id in self.members:  # re-added: it still names its story
                keys.add(item.article_id)
            own = (item.published_at, item.article_id)
            survivor = min([item.article_id, *keys])
            members = {item.article_id}
            representative = own
            for key in keys:
                members |= self.members.pop(key)
                representative = min(representative, self.representative.pop(key))
            self.members[survivor] = members
            self.representative[survivor] = representative
            self.story_of.update(dict.fromkeys(members, survivor))
            self.held[item.article_id] = (item.published_at, signature)
            merged_by[item.article_id] = tuple(sorted(keys - {survivor}))
        return [
            StoryAssignment(
                item.article_id,
                self.story_of[item.article_id],
                self.representative[self.story_of[item.article_id]][1],
                merged_by[item.article_id],
            )
            for item in items
        ]

    def evict(self, now: datetime) -> None:
        for article_id, (at, _) in list(self.held.items()):
            if at < now - self.window:
                del self.held[article_id]
                key = self.story_of.pop(article_id)
                self.members[key].discard(article_id)
                if not self.members[key]:
                    del self.members[key]
                    del self.representative[key]


VOCABULARY = [f"w{n}" for n in range(60)] + ["the", "of", "in", "three", "two", "monday"]
MARKERS = ["3", "03", "4", "three", "two", "monday", "friday"]


def stream(seed: int) -> list[list[StoryCandidate]]:
    """Batches of wire copies, rewrites and unrelated items, some published late,
    some evicted articles added again (with new text), some repeated while held."""
    rng = random.Random(seed)
    items: list[StoryCandidate] = []
    for article_id in range(1, 200):
        hours = article_id * 0.25 - rng.choice((0, 0, 0, 0.5, 4))  # some arrive late
        if items and rng.random() < 0.5:
            base = rng.choice(items[-30:])
            title, summary = base.title, base.summary
            if rng.random() < 0.3:  # another event: a number or weekday differs
                summary = f"{summary} {rng.choice(MARKERS)}"
            elif rng.random() < 0.5:  # a rewrite: words dropped or replaced
                words = summary.split()
                for _ in range(rng.randint(1, 4) if words else 0):
                    words[rng.randrange(len(words))] = rng.choice(VOCABULARY)
                summary = " ".join(words)
        else:
            title = " ".join(rng.choices(VOCABULARY, k=rng.randint(2, 8)))
            summary = " ".join(rng.choices(VOCABULARY, k=rng.randint(0, 30)))
            if rng.random() < 0.5:
                summary += f" {rng.choice(MARKERS)}"
        items.append(StoryCandidate(article_id, T0 + timedelta(hours=hours), title, summary))
    for _ in range(20):  # added again: while held (reported) or after eviction
        old = rng.choice(items[:100])
        at = rng.randrange(100, len(items))
        again = StoryCandidate(old.article_id, items[at].published_at, old.summary, old.title)
        items.insert(at, again)
    batches = []
    while items:
        size = rng.randint(1, 12)
        batches.append(items[:size])
        del items[:size]
    return batches


@pytest.mark.parametrize("seed", range(30))
def test_clusterer_agrees_with_the_pairwise_reference(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small bound, so that the copy cache turns over (index partitions are dropped
    # anyway: the stream spans four 12-hour windows).
    monkeypatch.setattr(watch.cluster, "_COPY_GENERATION", 8)
    clusterer = StoryClusterer(window=WINDOW)
    reference = Reference(WINDOW)
    for batch in stream(seed):
        assert clusterer.add(batch) == reference.add(batch)
        now = max(item.published_at for item in batch)
        clusterer.evict(now)
        reference.evict(now)
        assert {i: clusterer.story_of(i) for i in reference.held} == reference.story_of
        assert len(clusterer) == len(reference.held)
        assert clusterer.story_count == len(reference.members)
