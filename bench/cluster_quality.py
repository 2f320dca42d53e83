"""How well story clustering does on the bench feeds, against the generator's truth.

    uv run python bench/cluster_quality.py              # the 1,000 bench feeds
    uv run python bench/cluster_quality.py --n 200 --show 3

The generator knows which entries are copies of one wire story (carried by several
feeds under other URLs and retitled); every other entry is a story of its own. This
parses the generated feed files as a poll would (`sources.parse.parse_feed`), clusters
the entries as a cold poll stores them (feed by feed, from the sketches a parse worker
computes, without what most of a feed's entries carry), and reports pairwise precision
and recall against that truth, the number of stories and the largest one, the CPU
time `add` took (a stream whose summaries share much phrasing costs more candidates
than `bench_cluster.py`'s), and how many stories come out otherwise when the same
articles arrive in the reverse order.

The labelled set in tests/data/story_pairs.jsonl is the reference for the defaults;
this is the check that they hold on a 50,000-article stream, where single-link
chaining through boilerplate would show as one huge story.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gen_feeds
from sources.parse import parse_feed
from watch.cluster import StoryCandidate, StoryClusterer, feed_sketches

WORK = Path(__file__).resolve().parent / "work"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="feeds (50 entries each)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--show", type=int, default=0, help="print this many wrong merges")
    args = parser.parse_args()

    anchor = gen_feeds.anchor_now()
    out_dir = WORK / f"quality-{args.n}-{args.seed}"
    feeds = gen_feeds.generate(out_dir, args.n, seed=args.seed, anchor=anchor)
    truth = gen_feeds.story_truth(args.n, args.seed, anchor)

    clusterer = StoryClusterer()
    # Each feed's candidates as clustered, sketches only (`add` reads nothing else
    # of an article with a sketch), for the run in the other arrival order.
    batches: list[list[StoryCandidate]] = []
    label: dict[int, object] = {}
    shown: dict[int, tuple[str, str]] = {}
    article_id = 0
    spent = 0.0
    for feed in feeds:
        body = (out_dir / "base" / Path(feed.path).name).read_bytes()
        parsed = parse_feed(body, f"http://127.0.0.1{feed.path}")
        batch = []
        sketches = feed_sketches([(entry.title, entry.summary) for entry in parsed.entries])
        for entry, sketch in zip(parsed.entries, sketches, strict=True):
            assert entry.link is not None and entry.published is not None
            article_id += 1
            label[article_id] = truth[entry.link]
            shown[article_id] = (entry.title, entry.summary)
            batch.append(
                StoryCandidate(
                    article_id,
                    entry.published,
                    entry.title,
                    entry.summary,
                    parsed.title,
                    sketch,
                )
            )
        started = time.process_time()
        clusterer.add(batch)
        spent += time.process_time() - started
        batches.append([dataclasses.replace(c, title="", summary="") for c in batch])

    stories = sorted(_partition(clusterer, label), key=min)
    true_pairs = false_pairs = wrong = 0
    for members in stories:
        counts = collections.Counter(label[m] for m in members)
        same = sum(c * (c - 1) // 2 for c in counts.values())
        true_pairs += same
        false_pairs += len(members) * (len(members) - 1) // 2 - same
        if len(counts) > 1:
            wrong += 1
            if wrong <= args.show:
                for member in sorted(members)[:4]:
                    title, summary = shown[member]
                    text = re.sub(r"<[^>]+>", " ", summary)
                    print(f"{label[member]} | {title} | {' '.join(text.split())[:200]}")
                print("--")
    positives = sum(c * (c - 1) // 2 for c in collections.Counter(label.values()).values())
    sizes = sorted(map(len, stories), reverse=True)
    print(
        f"{len(label):,} articles in {len(stories):,} stories "
        f"({sum(1 for s in sizes if s > 1):,} with copies; largest {sizes[:3]}); "
        f"truth: {len(set(label.values())):,} stories"
    )
    print(
        f"pairs: precision {true_pairs / max(1, true_pairs + false_pairs):.4f}, "
        f"recall {true_pairs / max(1, positives):.4f} "
        f"({true_pairs:,} of {positives:,} same-story pairs; {false_pairs:,} wrong pairs "
        f"in {wrong:,} stories)"
    )
    print(f"clustering: {len(label) / spent:,.0f} articles/s of CPU time (`add`, from sketches)")

    # Order independence, measured: the same articles, the last feed's last entry first.
    # Only a list closed as boilerplate can make them differ (README: stories).
    reversed_clusterer = StoryClusterer()
    for batch in reversed(batches):
        reversed_clusterer.add(batch[::-1])
    first = set(stories)
    second = _partition(reversed_clusterer, label)
    differ = first - second
    print(
        f"reversed arrival order: {len(differ):,} of {len(first):,} stories differ "
        f"({sum(map(len, differ)):,} articles; {len(second - first):,} stories in their place)"
    )


def _partition(clusterer: StoryClusterer, articles: Iterable[int]) -> set[frozenset[int]]:
    """The stories of `articles`, as sets of article ids (story keys left out)."""
    stories: dict[int | None, set[int]] = collections.defaultdict(set)
    for article_id in articles:
        stories[clusterer.story_of(article_id)].add(article_id)
    return {frozenset(members) for members in stories.values()}


if __name__ == "__main__":
    main()
