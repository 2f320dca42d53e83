"""A progress bar for polls run from a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from newswatch.poll import FeedReport

FeedCallback = Callable[[FeedReport], None]


@contextmanager
def poll_progress(*, enabled: bool) -> Iterator[FeedCallback | None]:
    """Yield a per-feed callback that advances a bar on stderr, or None when not a terminal."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("polling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("poll", total=None, last="")

        def advance(feed: FeedReport) -> None:
            progress.update(task, advance=1, last=f"{feed.name}: {feed.status}")

        yield advance
