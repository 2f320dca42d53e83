"""URLs for comparing a fast path with the general code it shortcuts.

`random_urls` builds URLs from pieces chosen to sit on both sides of every condition a
shortcut checks (scheme case, host shape, ports, userinfo, IDN, percent-encoding, dot
segments, ";", empty "?" and "#", tracking parameters, whitespace and controls), so a
seeded run of a few thousand covers the plain common case and many near misses.
`corpus_urls` is every link-like string of the feed corpus.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

SCHEMES = ("http", "https", "HTTP", "Https", "ftp", "mailto", "", "javascript", "tag")
HOSTS = (
    "example.com",
    "www.example.com",
    "news.example.co.uk",
    "Example.COM",
    "EXAMPLE.com.",
    "xn--bcher-kva.example",
    "bücher.example",
    "例え.jp",
    "127.0.0.1",
    "[::1]",
    "[2001:db8::0:1]",
    "[bad",
    "a" * 70 + ".example",
    ".example.com",
    "exa_mple.com",
    "-x-.example",
    "123",
    "ｅｘａｍｐｌｅ.com",
    "",
)
PORTS = ("", "", "", ":80", ":443", ":8080", ":", ":0", ":99999", ":x")
USERINFO = ("", "", "", "user@", "user:pw@", "@", "u%20s@")
SEGMENTS = (
    "a",
    "world",
    "2026",
    "story-1234",
    "index.html",
    "",
    ".",
    "..",
    ".well-known",
    "%7Euser",
    "%7euser",
    "caf%C3%A9",
    "café",
    "%E9t%E9",
    "%2F",
    "%25",
    "%zz",
    "a;b",
    "p;",
    "a b",
    "a+b",
    "a|b",
    "~x",
    "a:b",
    "@x",
    "(x)",
    "a*b",
    "'q'",
    '"q"',
    "<x>",
    "[x]",
    "a\\b",
    "x\ty",
    "\u00a0",
    "emoji😀",
    "a=b",
    "a&b",
    "a,b",
    "a!b",
    "a$b",
)
KEYS = (
    "a",
    "b",
    "id",
    "page",
    "q",
    "utm_source",
    "UTM_Medium",
    "utm_",
    "fbclid",
    "gclid",
    "pk_campaign",
    "mtm_x",
    "hsa_acc",
    "ref",
    "ref_src",
    "_ga",
    "utm%5Fsource",
    "utm+source",
    "a b",
    "",
    "é",
    "x%20y",
    "Z",
    "_",
)
VALUES = (
    "",
    "1",
    "rss",
    "x y",
    "x+y",
    "x%20y",
    "a=b",
    "é",
    "%e9",
    "%C3%A9",
    "1;2",
    "/path",
    "?",
    "a'b",
    "A",
    "z",
)
FRAGMENTS = ("", "", "", "#", "#top", "#a b", "#é", "#x?y", "##")


PLAIN_KEYS = ("a", "b", "id", "page", "utm_source", "UTM_Medium", "utm_", "fbclid", "ref_src", "_")
PLAIN_VALUES = ("", "1", "rss", "A", "z", "a-b.c~d_e")


def _query(rng: random.Random, plain: bool) -> str:
    count = rng.choice((0, 0, 1, 2, 3, 5))
    keys, values = (PLAIN_KEYS, PLAIN_VALUES) if plain else (KEYS, VALUES)
    fields = []
    for _ in range(count):
        key, value = rng.choice(keys), rng.choice(values)
        form = rng.random()
        if form < 0.75:
            fields.append(f"{key}={value}")
        elif form < 0.85:
            fields.append(key)
        elif form < 0.92:
            fields.append(f"{key}=")
        else:
            fields.append("")
    if not fields:
        return rng.choice(("", "", "", "?"))
    separators = ("&", "&", "&", "&&") if plain else ("&", ";", "&&")
    return "?" + rng.choice(separators).join(fields)


def random_url(rng: random.Random) -> str:
    """One URL, absolute http(s) most of the time, from the pieces above."""
    scheme = rng.choice(SCHEMES) if rng.random() < 0.3 else rng.choice(("http", "https"))
    slashes = rng.choice(("//", "//", "//", "//", "///", "/", ""))
    host = rng.choice(HOSTS) if rng.random() < 0.4 else rng.choice(HOSTS[:3])
    port = rng.choice(PORTS) if rng.random() < 0.3 else ""
    userinfo = rng.choice(USERINFO) if rng.random() < 0.2 else ""
    plain = rng.random() < 0.6
    pool = SEGMENTS[:5] if plain else SEGMENTS
    path = "".join("/" + rng.choice(pool) for _ in range(rng.choice((0, 1, 2, 3, 4))))
    if rng.random() < 0.1:
        path += "/"
    fragment = rng.choice(FRAGMENTS) if rng.random() < 0.3 else ""
    prefix = f"{scheme}:" if scheme else ""
    url = f"{prefix}{slashes}{userinfo}{host}{port}{path}{_query(rng, plain)}{fragment}"
    if rng.random() < 0.05:
        url = rng.choice((" ", "\t", "\n", "\x00", "\x1f")) + url
    if rng.random() < 0.05:
        url += rng.choice((" ", "\n", "\x7f", "\u200b", "\u3000"))
    if rng.random() < 0.03:
        url = url.replace("/", "\\", 1)
    return url


def random_urls(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [random_url(rng) for _ in range(count)]


# Relative references a feed's links and ids are resolved against a base with.
RELATIVE = (
    "",
    "/",
    "/a/b",
    "a/b",
    "../a",
    "./a",
    "?q=1",
    "#frag",
    "//other.example/x",
    "///x",
    "http:///x",
    "http:x",
    "HTTP://Example.com/a",
    " http://example.com/a",
    "http://example.com/a ",
    "https://example.com/a?",
    "https://example.com/a#",
    "https://example.com/a;p",
    "https://example.com/a;p/b",
    "https://example.com/a/b;",
    "https://example.com?x=1",
    "https://[::1]/a",
    "https://[bad/a",
    "https://bücher.example/a",
    "https://example.com/é",
    "https://ex\tample.com/a",
    "https://example.com/a\\b",
    "https://user:pw@example.com:8080/a?b=c#d",
    "https://example.com//a//b",
    "https://example.com/a/../b/./c",
    "mailto:x@example.com",
    "javascript:alert(1)",
    "tag:example.com,2026:1",
)
BASES = (
    "",
    "https://news.example.com/feeds/world.xml",
    "http://127.0.0.2/f/00001.xml",
    "https://corpus.example/feed",
    "http://example.com",
    "https://[bad/feed",
    "https://bücher.example/feed",
    "ftp://example.com/a/b",
    "feed.xml",
)

_CORPUS_URL = re.compile(rb"""(?:href|src|url|about|resource)\s*=\s*["']([^"'<>]{1,400})["']""")
_CORPUS_TEXT_URL = re.compile(rb"""<(?:link|guid|id|url|comments)[^>]*>\s*([^<\s]{1,400})\s*<""")


def corpus_urls(corpus_dir: Path) -> list[str]:
    """Every link-like attribute value and element text in the corpus, decoded as UTF-8."""
    found: dict[str, None] = {}
    for path in sorted(corpus_dir.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for pattern in (_CORPUS_URL, _CORPUS_TEXT_URL):
            for match in pattern.finditer(data):
                found[match.group(1).decode("utf-8", "replace")] = None
    return list(found)
