"""Every file of the third-party feed corpus through `parse_feed`.

The corpus is parsed once per test session (a few seconds); each test then checks one
property over a whole folder and reports every file that breaks it, not just the first.
Entry counts are compared with what plain feedparser 6.0.14 finds: the research
machine's BASELINE-feedparser-6.0.14.tsv outside feedparser-tests/, and feedparser itself
(with the case's own `Header:` lines) for feedparser-tests/wellformed.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import feedparser
import pytest

from sources import parse
from sources.clean import sanitize_html
from sources.errors import ContentError
from sources.model import ParsedFeed
from sources.parse import parse_feed
from tests.test_clean import _reference_sanitize

FEED_URL = "https://corpus.example/feed"
NOT_FEED_FILES = ("README", "LICENSE", "PROVENANCE")
NOT_FEED_SUFFIXES = (".md", ".tsv", ".markdown")
# JSON files of the baseline that are not a usable JSON Feed on purpose
JSON_NOT_FEEDS = {
    "gofeed-testdata/parser/json/invalid/invalid.json",  # invalid JSON
    "gofeed-testdata/parser/universal/invalid.json",
    "rsparser-resources/ScriptingNews.json",  # RSS-in-JSON, not JSON Feed
}
_HEADER = re.compile(rb"^Header:\s*([\w-]+):\s*(.*?)\s*$", re.MULTILINE)


@dataclass
class Outcome:
    feed: ParsedFeed | None = None
    content_error: ContentError | None = None
    crash: BaseException | None = None


@pytest.fixture(scope="module")
def parsed_corpus(
    corpus_dir: Path,
) -> tuple[dict[str, Outcome], list[tuple[str, str | None]]]:
    """Every corpus file's outcome, and every (HTML, base URL) parsing sanitized."""
    results: dict[str, Outcome] = {}
    html_inputs: list[tuple[str, str | None]] = []
    sanitize = parse.sanitize_html

    def recording_sanitize(s: str | None, base_url: str | None = None) -> str:
        html_inputs.append((s or "", base_url))
        return sanitize(s, base_url)

    parse.sanitize_html = recording_sanitize
    try:
        for path in sorted(corpus_dir.rglob("*")):
            if not path.is_file() or path.name.startswith(NOT_FEED_FILES):
                continue
            if path.name.endswith(NOT_FEED_SUFFIXES):
                continue
            data = path.read_bytes()
            headers = _case_headers(data)
            outcome = Outcome()
            try:
                outcome.feed = parse_feed(data, FEED_URL, headers.get("content-type"))
            except ContentError as err:
                outcome.content_error = err
            except Exception as err:
                outcome.crash = err
            results[path.relative_to(corpus_dir).as_posix()] = outcome
    finally:
        parse.sanitize_html = sanitize
    return results, html_inputs


@pytest.fixture(scope="module")
def outcomes(
    parsed_corpus: tuple[dict[str, Outcome], list[tuple[str, str | None]]],
) -> dict[str, Outcome]:
    return parsed_corpus[0]


def _case_headers(data: bytes) -> dict[str, str]:
    """The HTTP headers a feedparser test case says it is served with."""
    if not data.startswith(b"<!--") and b"Header:" not in data[:2048]:
        return {}
    return {
        m.group(1).decode().lower(): m.group(2).decode("latin-1")
        for m in _HEADER.finditer(data[:2048])
    }


def _baseline(corpus_dir: Path) -> dict[str, int]:
    counts = {}
    for line in (corpus_dir / "BASELINE-feedparser-6.0.14.tsv").read_text().splitlines():
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        counts[fields[0]] = int(fields[5])
    return counts


def test_the_corpus_has_every_folder_parsed(outcomes: dict[str, Outcome]) -> None:
    assert len(outcomes) > 4000


@pytest.mark.parametrize(
    "folder",
    [
        "codehollow-feedreader-tests",
        "feed-rs-fixture",
        "feedjira-sample-feeds",
        "feedparser-tests",
        "gofeed-testdata",
        "jsonfeed-spec-examples",
        "laminas-feed-reader",
        "miniflux-testdata",
        "node-feedparser-feeds",
        "prof18-rss-parser-resources",
        "rss-parser-test",
        "rsparser-resources",
        "simplepie-tests-data",
    ],
)
def test_no_corpus_file_raises_anything_but_a_content_error(
    outcomes: dict[str, Outcome], folder: str
) -> None:
    mine = {k: v for k, v in outcomes.items() if k.startswith(folder + "/")}
    assert mine, f"no files under {folder}"
    crashes = {k: repr(v.crash) for k, v in mine.items() if v.crash is not None}
    assert crashes == {}


def test_no_feed_yields_fewer_entries_than_feedparser_did(
    outcomes: dict[str, Outcome], corpus_dir: Path
) -> None:
    fewer = {}
    for name, expected in _baseline(corpus_dir).items():
        if name in JSON_NOT_FEEDS:
            continue
        outcome = outcomes[name]
        got = len(outcome.feed.entries) if outcome.feed else 0
        if got < expected:
            fewer[name] = (got, expected, str(outcome.content_error))
    assert fewer == {}


def test_every_json_feed_yields_entries_feedparser_could_not_read(
    outcomes: dict[str, Outcome], corpus_dir: Path
) -> None:
    json_files = [n for n in _baseline(corpus_dir) if n.endswith(".json")]
    assert len(json_files) > 25
    empty = {}
    for name in json_files:
        if name in JSON_NOT_FEEDS:
            continue
        feed = outcomes[name].feed
        if feed is None or not feed.entries or not feed.format.startswith("jsonfeed"):
            empty[name] = outcomes[name].content_error
    assert empty == {}


def test_json_documents_that_are_not_json_feeds_are_content_errors(
    outcomes: dict[str, Outcome],
) -> None:
    assert {n: outcomes[n].content_error is not None for n in JSON_NOT_FEEDS} == dict.fromkeys(
        JSON_NOT_FEEDS, True
    )


def test_every_wellformed_feedparser_case_yields_its_entries(
    outcomes: dict[str, Outcome], corpus_dir: Path
) -> None:
    cases = sorted((corpus_dir / "feedparser-tests" / "wellformed").rglob("*.xml"))
    assert len(cases) > 1500
    fewer = {}
    for path in cases:
        data = path.read_bytes()
        reference = feedparser.parse(io.BytesIO(data), response_headers=_case_headers(data))
        outcome = outcomes[path.relative_to(corpus_dir).as_posix()]
        got = len(outcome.feed.entries) if outcome.feed else 0
        if got < len(reference.entries):
            fewer[path.name] = (got, len(reference.entries), str(outcome.content_error))
    assert fewer == {}


def test_html_pages_of_the_corpus_name_the_first_feed_they_link_to(
    outcomes: dict[str, Outcome], corpus_dir: Path
) -> None:
    folder = corpus_dir / "codehollow-feedreader-tests"
    expected: dict[str, str] = {}
    for line in (folder / "EXPECTATIONS-Html.tsv").read_text().splitlines():
        if not line.startswith("#"):
            name, _title, url = line.split("\t")[:3]
            expected.setdefault(f"codehollow-feedreader-tests/{name}", urljoin(FEED_URL, url))
    assert len(expected) == 7
    offered = {
        name: getattr(outcomes[name].content_error, "alternate_url", None) for name in expected
    }
    assert offered == expected


def test_every_corpus_html_sanitizes_as_with_a_cleaner_per_base(
    parsed_corpus: tuple[dict[str, Outcome], list[tuple[str, str | None]]],
) -> None:
    # sanitize_html shares one marker-base cleaner where a per-base one gives the same
    html_inputs = parsed_corpus[1]
    assert len(html_inputs) > 5000
    different = [
        (html[:80], base)
        for html, base in html_inputs
        if sanitize_html(html, base) != _reference_sanitize(html, base)
    ]
    assert different == []
