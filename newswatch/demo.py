"""`newswatch demo`: the whole pipeline once, offline, on bundled sample feeds.

Serves the sample feeds from 127.0.0.1, writes a config that lists them (with the
topics and aliases of the shipped `newswatch.toml`), then polls, polls again (every
feed answers 304 Not Modified), and writes the digest — all into one work directory
with a SQLite database.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from newswatch.config import load_config
from newswatch.demo_server import DemoServer

EXAMPLE_CONFIG_NAMES = (
    Path(__file__).resolve().parent.parent / "newswatch.toml",  # a source checkout
    Path(__file__).resolve().parent / "example.toml",  # an installed wheel
)


def example_config() -> dict[str, Any]:
    """The shipped example config (its topics and aliases are the product's defaults)."""
    for path in EXAMPLE_CONFIG_NAMES:
        if path.is_file():
            return tomllib.loads(path.read_text(encoding="utf-8"))
    raise FileNotFoundError("the example newswatch.toml is not installed")


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def demo_config_text(feeds: list[tuple[str, str]], example: dict[str, Any]) -> str:
    lines = [
        "# Written by `newswatch demo`: the bundled sample feeds, served from 127.0.0.1.",
        "[storage]",
        'url = "sqlite:///newswatch-demo.db"',
        "",
        "[poll]",
        "concurrency = 10",
        "feed_timeout = 20",
        "deadline = 120",
        "",
    ]
    for name, url in feeds:
        lines += ["[[sources]]", f"name = {_toml_string(name)}", f"url = {_toml_string(url)}", ""]
    lines.append("[aliases]")
    for key, value in example.get("aliases", {}).items():
        lines.append(f"{key} = {_toml_string(value)}")
    lines.append("")
    for topic in example.get("topics", []):
        lines += ["[[topics]]", f"name = {_toml_string(topic['name'])}"]
        lines.append(f"query = {_toml_string(topic['query'])}")
        if "min_score" in topic:
            lines.append(f"min_score = {float(topic['min_score'])}")
        lines.append("")
    lines += [
        "[[digests]]",
        'name = "demo"',
        'format = ["markdown", "html"]',
        'output = "digests/"',
        'timezone = "Europe/Istanbul"',
        "catchup_hours = 168",  # the sample feeds span a week
        "",
    ]
    return "\n".join(lines)


def run_demo(workdir: Path, *, prefect: bool, echo: Callable[[str], object]) -> Path:
    """Run the demo; returns the directory the digest was written to."""
    from newswatch.runs import run_digest, run_poll

    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in workdir.glob("newswatch-demo.db*"):
        stale.unlink()  # every demo starts from an empty database
    with DemoServer() as server:
        feeds = [(feed.name, feed.url) for feed in server.feeds]
        config_path = workdir / "newswatch.toml"
        config_path.write_text(demo_config_text(feeds, example_config()), encoding="utf-8")
        config = load_config(config_path)
        echo(f"Serving {len(feeds)} sample feeds on 127.0.0.1; config: {config_path}")

        first = run_poll(config, all_sources=True, prefect=prefect)
        echo(
            f"Poll 1: {len(first.feeds)} feeds, {first.ok} ok, {first.failed} failed; "
            f"{first.new_articles} new articles, {first.duplicates} duplicates skipped, "
            f"{first.new_matches} topic matches"
        )
        second = run_poll(config, all_sources=True, prefect=prefect)
        echo(
            f"Poll 2: {second.unchanged} of {len(second.feeds)} feeds unchanged (HTTP 304), "
            f"{second.new_articles} new articles"
        )
    result = run_digest(config, name="demo", fmt=None, output=None, dry_run=False, prefect=prefect)
    for line in result.lines():
        echo(line)
    digest_dir = config.resolve("digests/")
    echo(f"Database: {config.database_url}")
    echo(f"Digest written to {digest_dir}")
    return digest_dir
