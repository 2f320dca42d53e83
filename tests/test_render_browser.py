"""The HTML digest in a real browser: headless Chromium (Debian package `chromium`).

Checks the text a reader sees (from `--dump-dom`), that hostile feed content does
not execute, and that a screenshot comes out with a sane size. Skipped when
Chromium is not installed, unless the environment variable CI is set (then the
missing browser is a failure). The page is loaded from a file and every host name
resolves to nothing, so the browser never touches the network.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from digest.model import DigestView, OutletLink, StoryView, TopicSection
from digest.render import render_html
from tests.golden.sample import sample_view

pytestmark = pytest.mark.browser

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not found but CI is set: install the Debian package chromium")
        pytest.skip("chromium not installed (apt-get install chromium); CI=1 makes this fail")
    return path


def run_chromium(chromium: str, tmp_path: Path, page: Path, *extra: str) -> str:
    """Run Chromium once on `page` with a fresh profile; its stdout."""
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    result = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def write_page(tmp_path: Path, view: DigestView) -> Path:
    page = tmp_path / "digest.html"
    page.write_text(render_html(view), encoding="utf-8")
    return page


class _VisibleText(HTMLParser):
    """Text inside <body>, minus script and style."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._in_body = True
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if self._in_body and not self._skip:
            self.parts.append(data)

    def text(self) -> str:
        return " ".join("".join(self.parts).split())


def visible_text(dom: str) -> str:
    parser = _VisibleText()
    parser.feed(dom)
    return parser.text()


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


PAYLOAD = (
    "<script>document.body.setAttribute('data-pwned','script')</script>"
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"
    "<svg onload=\"document.body.setAttribute('data-pwned','svg')\"></svg>"
)


def sample_with_hostile_section() -> DigestView:
    """The golden sample plus a section of hostile feed content (one browser run for both)."""
    view = sample_view()
    story = StoryView(
        title=PAYLOAD,
        url="javascript:document.body.setAttribute('data-pwned','href')",
        outlets=(OutletLink(PAYLOAD, "javascript:alert(1)"),),
        published=view.generated_at,
        snippet=PAYLOAD,
        highlights=((0, 8),),
    )
    return replace(view, sections=(*view.sections, TopicSection("Hostile", (story,))))


@pytest.fixture(scope="module")
def dom(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The DOM Chromium built from the rendered digest, after running any scripts."""
    tmp_path = tmp_path_factory.mktemp("browser-dom")
    page = write_page(tmp_path, sample_with_hostile_section())
    return run_chromium(chromium, tmp_path, page, "--dump-dom")


def test_browser_shows_stories_outlets_and_local_times(dom: str) -> None:
    text = visible_text(dom)
    assert "newswatch · daily" in text
    assert "Israel & Turkey hold deconfliction talks on Syria" in text
    assert "Kurdistan24 · 2026-11-25 06:12 +03" in text
    assert "Türkiye–İsrail hattı yeniden açıldı" in text


def test_browser_shows_also_reported_by_and_more(dom: str) -> None:
    text = visible_text(dom)
    assert "Also reported by: Al-Monitor, Times of Israel, Anadolu" in text
    assert "and 4 more" in text


def test_hostile_feed_content_does_not_run_in_the_browser(dom: str) -> None:
    assert "data-pwned=" not in dom  # no script or handler ran
    assert "<script" not in dom and "<img" not in dom and "<svg" not in dom
    assert "javascript:" not in "".join(re.findall(r'href="([^"]*)"', dom))
    assert "<script>document.body.setAttribute" in visible_text(dom)  # shown as text


def test_browser_screenshot_has_a_sane_size(chromium: str, tmp_path: Path) -> None:
    shot = tmp_path / "digest.png"
    run_chromium(
        chromium,
        tmp_path,
        write_page(tmp_path, sample_view()),
        f"--screenshot={shot}",
        "--window-size=800,1200",
        "--hide-scrollbars",
    )
    assert shot.exists()
    assert png_size(shot) == (800, 1200)
    assert shot.stat().st_size > 20_000  # a blank page compresses to a few KB
