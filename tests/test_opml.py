"""OPML import and export: feeds, names, categories as tags, junk, entity attacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from sources.opml import OpmlError, OpmlFeed, read_opml, write_opml

NESTED = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Analyst feeds</title></head>
  <body>
    <outline text="News">
      <outline text="Middle East">
        <outline type="rss" text="Kurdistan24" xmlUrl="https://www.kurdistan24.net/en/rss"/>
        <outline type="rss" title="Daily Sabah" xmlUrl="https://www.dailysabah.com/rss"/>
      </outline>
      <outline type="rss" text="BBC World" xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml"
               category="/Public broadcasters,UK"/>
    </outline>
    <outline type="rss" text="Unfiled" xmlUrl="https://example.org/feed"/>
  </body>
</opml>
"""


def test_reads_every_feed_with_its_name_and_url() -> None:
    feeds = read_opml(NESTED)
    assert [(f.name, f.url) for f in feeds] == [
        ("Kurdistan24", "https://www.kurdistan24.net/en/rss"),
        ("Daily Sabah", "https://www.dailysabah.com/rss"),
        ("BBC World", "https://feeds.bbci.co.uk/news/world/rss.xml"),
        ("Unfiled", "https://example.org/feed"),
    ]


def test_nested_outlines_become_tags_in_order() -> None:
    assert read_opml(NESTED)[0].tags == ("News", "Middle East")


def test_the_category_attribute_adds_tags() -> None:
    assert read_opml(NESTED)[2].tags == ("News", "Public broadcasters", "UK")


def test_a_feed_outside_any_category_has_no_tags() -> None:
    assert read_opml(NESTED)[3].tags == ()


def test_export_then_import_gives_the_same_feeds() -> None:
    feeds = [
        OpmlFeed("Times of Israel", "https://www.timesofisrael.com/feed/", ("News", "Israel")),
        OpmlFeed("Kurdistan24", "https://www.kurdistan24.net/en/rss", ("News", "Syria")),
        OpmlFeed("Al-Monitor", "https://www.al-monitor.com/rss", ("News",)),
        OpmlFeed("Untagged & odd <name>", "https://example.org/feed?a=1&b=2", ()),
        OpmlFeed("כאן חדשות 🇮🇱", "https://example.org/he", ("עברית",)),
    ]
    assert read_opml(write_opml(feeds, "newswatch sources")) == feeds


def test_export_is_opml_2_with_the_title() -> None:
    data = write_opml([], "My <sources>")
    assert data.startswith(b"<?xml")
    assert b'<opml version="2.0">' in data
    assert b"<title>My &lt;sources&gt;</title>" in data


def test_export_drops_characters_xml_cannot_carry() -> None:
    data = write_opml([OpmlFeed("bad\x00\x07name", "https://example.org/f")], "t")
    assert read_opml(data)[0].name == "badname"


def test_a_url_listed_twice_is_read_once() -> None:
    data = b"""<opml version="1.0"><body>
      <outline text="A" xmlUrl="https://example.org/f"/>
      <outline text="B"><outline text="A again" xmlUrl="https://example.org/f"/></outline>
    </body></opml>"""
    assert read_opml(data) == [OpmlFeed("A", "https://example.org/f", ())]


def test_attribute_names_are_read_in_any_case() -> None:
    data = b'<opml><body><outline TEXT="A" XMLURL="https://example.org/f"/></body></opml>'
    assert read_opml(data) == [OpmlFeed("A", "https://example.org/f", ())]


def test_a_feed_without_a_name_is_named_by_its_url() -> None:
    data = b'<opml><body><outline xmlUrl="https://example.org/f"/></body></opml>'
    assert read_opml(data)[0].name == "https://example.org/f"


def test_bare_ampersands_and_html_entities_are_repaired() -> None:
    data = (
        b'<opml><body><outline text="News&nbsp;&amp; Views & more" xmlUrl="https://e.org/f"/>'
        b"</body></opml>"
    )
    assert read_opml(data)[0].name == "News & Views & more"


def test_junk_around_outlines_is_ignored() -> None:
    data = b"""<?xml version="1.0"?>
    <!-- exported by some reader -->
    <opml version="2.0"><head/><body>
      <junk>text</junk>
      <outline text="no url, no children"/>
      <outline text="A" xmlUrl="  https://example.org/f  " htmlUrl="https://example.org/"/>
    </body></opml>"""
    assert read_opml(data) == [OpmlFeed("A", "https://example.org/f", ())]


@pytest.mark.parametrize("data", [b"", b"not xml at all", b"<opml><body>", b"\xff\xfe\x00"])
def test_unreadable_data_is_an_opml_error(data: bytes) -> None:
    with pytest.raises(OpmlError):
        read_opml(data)


def test_another_xml_document_is_an_opml_error() -> None:
    with pytest.raises(OpmlError, match="rss"):
        read_opml(b"<rss version='2.0'><channel/></rss>")


def test_external_entities_are_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    data = f"""<?xml version="1.0"?>
<!DOCTYPE opml [ <!ENTITY xxe SYSTEM "file://{secret}"> ]>
<opml><body><outline text="&xxe;" xmlUrl="https://example.org/f"/></body></opml>
""".encode()
    feeds = read_opml(data)
    assert "TOP-SECRET-VALUE" not in repr(feeds)


def test_entity_expansion_never_happens() -> None:
    lol = "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    data = f"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY lol0 "lol">{lol}]>
<opml><body><outline text="&lol9;" xmlUrl="https://example.org/f"/></body></opml>
""".encode()
    feeds = read_opml(data)
    assert len(feeds[0].name) < 100
