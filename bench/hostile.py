"""Peak memory and wall time of a poll when a tenth of the feeds are hostile.

    uv run python -m bench.hostile --feeds 1000 --deadline 120

Serves N loopback feeds (real news captures from the shared corpus and generated RSS)
of which 10% attack: 1 GB gzip bombs, nested gzip bombs, endless bodies and feeds that
drip one byte a second. Runs `newswatch --no-prefect poll` under GNU time and prints
its wall time, peak RSS and summary. Issue 8's limits: peak RSS ≤ 300 MB for 1,000
feeds whatever they send, and wall time bounded by `[poll] deadline`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.http import Drip, Endless, FeedServer  # noqa: E402
from tests.test_poll_pipeline import rss, story, write_config  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "codehollow-feedreader-tests" / "Feeds"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--deadline", type=float, default=120)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="newswatch-hostile-"))
    server = FeedServer()
    try:
        corpus = sorted(CORPUS.glob("Rss20*.xml"))
        hostile = max(4, args.feeds // 10)
        feeds: dict[str, str] = {}
        for i in range(args.feeds - hostile):
            if corpus and i % 3 == 0:
                path = corpus[i % len(corpus)]
                feeds[f"corpus {i}"] = server.route(f"/c{i}.xml", path, content_type=None)
            else:
                body = rss([story(i * 100 + k) for k in range(30)])
                feeds[f"gen {i}"] = server.route(f"/g{i}.xml", body)
        for i in range(hostile):
            kind = i % 10
            if kind < 4:
                feeds[f"bomb {i}"] = server.gzip_bomb(f"/bomb{i}", 1024**3)
            elif kind < 6:
                feeds[f"nested {i}"] = server.gzip_bomb(f"/nested{i}", 1024**3, layers=2)
            elif kind < 9:
                feeds[f"endless {i}"] = server.route(f"/endless{i}", b"x", behaviour=Endless())
            else:
                feeds[f"drip {i}"] = server.route(f"/drip{i}", b"<rss>", behaviour=Drip(1.0))
        poll = {"per_host": 50, "concurrency": 50, "feed_timeout": 30, "deadline": args.deadline}
        config = write_config(work, feeds, poll=poll)
        env = dict(
            os.environ,
            NEWSWATCH_DATABASE_URL=f"sqlite:///{work / 'bench.db'}",
            NEWSWATCH_PREFECT="0",
        )
        newswatch = shutil.which("newswatch") or str(ROOT / ".venv" / "bin" / "newswatch")
        command = ["/usr/bin/time", "-v", newswatch, "--no-prefect", "--config", str(config)]
        started = time.monotonic()
        done = subprocess.run([*command, "poll"], env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        peak = [line for line in done.stderr.splitlines() if "Maximum resident" in line]
        print(f"{args.feeds} feeds ({hostile} hostile), deadline {args.deadline:g} s")
        print(f"exit {done.returncode}, wall {wall:.1f} s")
        print(done.stdout.splitlines()[0] if done.stdout else done.stderr[-2000:])
        for line in peak:
            kb = int(line.rsplit(":", 1)[1])
            print(f"peak RSS {kb / 1024:.0f} MB")
        return done.returncode
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
