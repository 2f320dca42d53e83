"""The shipped topic, read from newswatch.toml, against the labelled headline set.

`tests/data/topic_labelled.jsonl` holds realistic headlines and summaries, relevant
Israel–Turkey military deconfliction stories in Syria and hard negatives (Turkey–Russia
and US–Russia deconfliction, Israeli strikes without Turkey, Israel–Turkey trade,
a Thanksgiving turkey, football, earthquake aid), in English, Turkish, Hebrew and Arabic.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from watch.matcher import Document, Matcher, TopicSpec
from watch.query import validate_aliases

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "Israel–Turkey Syria deconfliction"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    with (ROOT / "newswatch.toml").open("rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def matcher(config: dict[str, Any]) -> Matcher:
    (topic,) = [t for t in config["topics"] if t["name"] == TOPIC]
    spec = TopicSpec(TOPIC, topic["query"], topic.get("min_score", 0.0))
    return Matcher.compile([spec], config.get("aliases", {}))


@pytest.fixture(scope="module")
def labelled() -> list[dict[str, Any]]:
    path = ROOT / "tests" / "data" / "topic_labelled.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def predictions(matcher: Matcher, rows: list[dict[str, Any]]) -> list[tuple[bool, bool]]:
    return [
        (bool(matcher.match(Document(i, row["title"], row["summary"]))), row["relevant"])
        for i, row in enumerate(rows)
    ]


def test_labelled_set_is_large_and_balanced(labelled: list[dict[str, Any]]) -> None:
    assert len(labelled) >= 150
    relevant = sum(row["relevant"] for row in labelled)
    assert 0.3 < relevant / len(labelled) < 0.7
    assert all(set(row) == {"title", "summary", "relevant", "note"} for row in labelled)


def test_config_aliases_are_valid(config: dict[str, Any]) -> None:
    validate_aliases(config["aliases"])


def test_default_topic_precision(matcher: Matcher, labelled: list[dict[str, Any]]) -> None:
    pairs = predictions(matcher, labelled)
    hits = [relevant for predicted, relevant in pairs if predicted]
    assert sum(hits) / len(hits) >= 0.95


def test_default_topic_recall(matcher: Matcher, labelled: list[dict[str, Any]]) -> None:
    pairs = predictions(matcher, labelled)
    found = [predicted for predicted, relevant in pairs if relevant]
    assert sum(found) / len(found) >= 0.95


@pytest.mark.parametrize(
    ("title", "summary", "expected"),
    [
        (
            "Israel and Turkey Reach Military Coordination Agreement in Syria",
            "Israeli and Turkish officials agreed on a mechanism to prevent clashes.",
            True,
        ),
        (
            "Where to find a Thanksgiving turkey in Israel",
            "American immigrants in Jerusalem share tips on ordering a whole turkey.",
            False,
        ),
        (
            "Turkey and Russia agree on deconfliction in northern Syria",
            "Turkish and Russian officials agreed to strengthen coordination in Idlib.",
            False,
        ),
    ],
)
def test_default_topic_examples(matcher: Matcher, title: str, summary: str, expected: bool) -> None:
    assert bool(matcher.match(Document(1, title, summary))) is expected
