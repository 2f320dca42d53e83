"""Benchmark digest rendering: 1,000 matches rendered to HTML, text and Markdown.

Run with `uv run python bench/bench_render.py [--stories 1000] [--reps 7]`. The view
model is generated from a fixed seed (10 topics, realistic titles, 200-character
snippets with highlights, 1-3 outlets and up to 3 "also reported by" each), so runs
are comparable. Reported: the first render (includes compiling the templates) and
the median of the following runs, each run being all three formats plus the
subject; HTML includes CSS inlining. Wall and CPU time are both shown: on a
shared machine the wall time mostly measures the other processes. Target: at
most 0.5 s for 1,000 matches.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from digest.model import DigestView, OutletLink, StoryView, TopicSection
from digest.render import render_html, render_markdown, render_text, subject

SEED = 20261125
TARGET_S = 0.5
_VOCABULARY = (
    "Israel Turkey Syria Türkiye İsrail deconfliction coordination military talks army "
    "forces ministry Ankara Damascus airspace border drone strike ceasefire envoy "
    "sanctions election minister statement officials sources report said on Tuesday "
    "of the in and to with over after near & <b> «quoted» سوريا ישראל"
)
WORDS = _VOCABULARY.split()
OUTLETS = [f"Outlet {i}" for i in range(40)]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _story(rng: random.Random, i: int, base: datetime) -> StoryView:
    snippet = _sentence(rng, 32)[:200]
    highlights = []
    for _ in range(3):
        start = rng.randrange(0, max(1, len(snippet) - 10))
        highlights.append((start, start + rng.randint(3, 10)))
    outlets = tuple(
        OutletLink(name, f"https://{name.replace(' ', '').lower()}.example/")
        for name in rng.sample(OUTLETS, rng.randint(1, 3))
    )
    also = tuple(
        OutletLink(name, f"https://{name.replace(' ', '').lower()}.example/s/{i}")
        for name in rng.sample(OUTLETS, rng.randint(0, 3))
    )
    return StoryView(
        title=_sentence(rng, rng.randint(6, 14)),
        url=f"https://news.example.com/{i}?utm=x&id={i}",
        outlets=outlets,
        published=base - timedelta(minutes=rng.randint(0, 1440)),
        snippet=snippet,
        highlights=tuple(highlights),
        score=rng.random() * 5,
        terms=("israel", "turkey"),
        also_reported=also,
    )


def make_view(stories: int, topics: int = 10) -> DigestView:
    rng = random.Random(SEED)
    base = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
    per_topic = [stories // topics + (1 if t < stories % topics else 0) for t in range(topics)]
    sections = []
    counter = 0
    for t, count in enumerate(per_topic):
        items = []
        for _ in range(count):
            items.append(_story(rng, counter, base))
            counter += 1
        sections.append(TopicSection(f"Topic {t}: {_sentence(rng, 3)}", tuple(items)))
    return DigestView("daily", "Europe/Istanbul", base, base - timedelta(days=1), tuple(sections))


def render_all(view: DigestView) -> int:
    """Render every format; the total output size (so nothing is optimised away)."""
    return (
        len(render_html(view))
        + len(render_text(view))
        + len(render_markdown(view))
        + len(subject(view))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()

    view = make_view(args.stories)
    start = time.perf_counter()
    size = render_all(view)
    first = time.perf_counter() - start

    times = []
    cpu_times = []
    per_format: dict[str, list[float]] = {"html": [], "text": [], "markdown": []}
    for _ in range(args.reps):
        start, cpu = time.perf_counter(), time.process_time()
        render_all(view)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu)
        formats = (("html", render_html), ("text", render_text), ("markdown", render_markdown))
        for name, fn in formats:
            t0 = time.perf_counter()
            fn(view)
            per_format[name].append(time.perf_counter() - t0)

    median = statistics.median(times)
    print(f"stories: {view.total} in {len(view.sections)} topics, output {size / 1e6:.1f} MB")
    print(f"first render (incl. template compile): {first:.3f} s")
    print(f"all three formats, median of {args.reps}: {median:.3f} s (min {min(times):.3f} s)")
    print(f"  CPU time, median: {statistics.median(cpu_times):.3f} s (wall > CPU: a busy machine)")
    for name, values in per_format.items():
        print(f"  {name:<8} median {statistics.median(values):.3f} s")
    cpu = statistics.median(cpu_times)
    verdict = "OK" if median <= TARGET_S else "over target on wall time"
    if median > TARGET_S and cpu <= TARGET_S:
        verdict += f" (CPU time {cpu:.3f} s is within it: load average {os.getloadavg()[0]:.1f})"
    print(f"target <= {TARGET_S} s: {verdict}")


if __name__ == "__main__":
    main()
