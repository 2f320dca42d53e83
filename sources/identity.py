"""Article identity: which entries, in whichever feed, are the same news item.

An article's key is a SHA-256 (64 hex characters, so a 10,000-character URL indexes like
any other) of the first of these the entry has:

1. its canonical link (`canonical_url`), kind "url";
2. its GUID, kind "guid". GUIDs that are globally unique by construction (`tag:` and
   `urn:` URIs, and URLs of any scheme) are keyed as they are, so two feeds carrying the
   same `tag:` GUID share the article. Anything else ("1234", "post-17") is only unique
   inside its feed and is keyed together with the feed's canonical URL. An http(s) GUID
   on an entry without a link is a permalink (RSS isPermaLink defaults to true) and is
   treated as the link, kind "url";
3. its normalised title + summary (tags removed, case folded, whitespace collapsed), kind
   "content": the same wire story without a link or GUID in two feeds is one article.

The key hashes the canonical URL with an http scheme folded to https: outlets link the
same story both ways and never serve different stories on the two schemes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from w3lib.url import canonicalize_url, url_query_cleaner

from sources.clean import clean_text
from sources.model import Entry

# Query parameters that track the reader and never select content. Exact names...
TRACKING_PARAMS = frozenset(
    {
        "fbclid",  # Facebook
        "gclid",  # Google Ads
        "gclsrc",
        "dclid",  # DoubleClick
        "gbraid",
        "wbraid",
        "msclkid",  # Microsoft Ads
        "yclid",  # Yandex
        "twclid",  # X/Twitter
        "ttclid",  # TikTok
        "li_fat_id",  # LinkedIn
        "igshid",  # Instagram
        "igsh",
        "mc_cid",  # Mailchimp
        "mc_eid",
        "_hsenc",  # HubSpot
        "_hsmi",
        "mkt_tok",  # Marketo
        "oly_anon_id",  # Omeda
        "oly_enc_id",
        "vero_id",
        "wickedid",
        "ncid",  # Yahoo / HuffPost syndication
        "cmpid",  # campaign ids used by many news sites
        "ito",
        "ocid",  # Microsoft Start / MSN
        "smid",  # NYT share id
        "at_medium",  # AT Internet (BBC)
        "at_campaign",
        "at_custom1",
        "at_custom2",
        "at_custom3",
        "at_custom4",
        "ref_src",  # X/Twitter
        "s_cid",
        "_ga",  # Google Analytics cross-domain
        "_gl",
    }
)
# ...and prefixes: utm_* (Google Analytics), pk_* / mtm_* (Matomo), hsa_* (HubSpot ads).
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_GLOBAL_GUID = re.compile(r"^(?:tag:|urn:|[a-zA-Z][a-zA-Z0-9+.-]*://)\S", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class ArticleIdentity:
    """The dedupe key of one article, how it was derived, and its canonical URL if any."""

    key: str  # sha256 hex digest, 64 characters
    kind: Literal["url", "guid", "content"]
    canonical_url: str | None


def _is_tracking(name: str) -> bool:
    name = name.lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def canonical_url(url: str | None) -> str | None:
    """The canonical form of an absolute http(s) URL, or None for anything else.

    Scheme and host lower-cased (IDNA hosts in punycode), default port dropped, fragment
    removed, tracking parameters (`TRACKING_PARAMS`, `TRACKING_PREFIXES`) removed,
    remaining query parameters sorted, percent-encoding normalised (w3lib).
    """
    if not url:
        return None
    url = url.strip()
    plain = _plain_canonical_url(url)
    return plain if plain is not None else _w3lib_canonical_url(url)


def _w3lib_canonical_url(url: str) -> str | None:
    """`canonical_url` of a stripped `url`, the general way (w3lib)."""
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
            return None
        tracking = [k for k, _ in parse_qsl(parts.query, keep_blank_values=True) if _is_tracking(k)]
        if tracking:
            url = url_query_cleaner(url, tracking, remove=True, unique=False, keep_fragments=True)
        url = canonicalize_url(url, keep_fragments=False)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").rstrip(".")
        if not host:
            return None
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        port = parts.port
        netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
        if parts.username or parts.password:
            userinfo = parts.username or ""
            if parts.password:
                userinfo += f":{parts.password}"
            netloc = f"{userinfo}@{netloc}"
        return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    except ValueError:  # an invalid port or IPv6 literal
        return None


# A URL whose canonical form needs none of w3lib's work: a lower-case http(s) scheme, an
# ASCII host of letters, digits and hyphens (no port, no userinfo), and a path and query
# of characters w3lib never percent-encodes (no "%" to normalise, no ";" params, no "+"
# to read as a space). The fragment is dropped, so any printable ASCII may follow "#".
_PLAIN_URL = re.compile(
    r"(https?)://((?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+)"
    r"(/[A-Za-z0-9\-._~!$&'()*,=:@/]*)?"
    r"(?:\?([A-Za-z0-9\-._~=&]*))?"
    r"(?:#[!-~]*)?"
)


def _plain_canonical_url(url: str) -> str | None:
    """`canonical_url(url)` for a URL `_PLAIN_URL` matches, None for any other URL.

    w3lib costs ~100 us a URL; feed links are nearly all this plain (tests/test_identity.py
    compares the two paths on generated URLs and the corpus).
    """
    match = _PLAIN_URL.fullmatch(url)
    if match is None:
        return None
    scheme, host, path, query = match.groups()
    if path is None:
        path = "/"
    elif "/." in path:
        return None  # a dot segment, which w3lib resolves
    if not query:
        return f"{scheme}://{host.lower()}{path}"
    fields = []
    for field in query.split("&"):
        if not field:
            continue
        key, _, value = field.partition("=")
        if "=" in value:
            return None  # w3lib percent-encodes the second "="
        if not _is_tracking(key):
            fields.append((key, value))
    if not fields:
        return f"{scheme}://{host.lower()}{path}"
    # as w3lib: sorted by name, then value, every field written as name=value
    fields.sort()
    query = "&".join(f"{key}={value}" for key, value in fields)
    return f"{scheme}://{host.lower()}{path}?{query}"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _url_key(url: str) -> str:
    if url.startswith("http://"):
        url = "https://" + url[len("http://") :]
    return _sha256("url\n" + url)


def _normalise_content(text: str) -> str:
    return _WHITESPACE.sub(" ", clean_text(text).casefold()).strip()


def article_identity(entry: Entry, feed_url: str) -> ArticleIdentity:
    """The identity of `entry` as published in the feed at `feed_url` (see module doc)."""
    link = canonical_url(entry.link)
    if link:
        return ArticleIdentity(_url_key(link), "url", link)
    guid = (entry.guid or "").strip()
    if guid:
        guid_url = canonical_url(guid)
        if guid_url:
            return ArticleIdentity(_url_key(guid_url), "url", guid_url)
        if _GLOBAL_GUID.match(guid):
            return ArticleIdentity(_sha256("guid\n" + guid), "guid", None)
        scope = canonical_url(feed_url) or feed_url.strip()
        return ArticleIdentity(_sha256(f"guid\n{scope}\n{guid}"), "guid", None)
    title = _normalise_content(entry.title)
    summary = _normalise_content(entry.summary or entry.content or "")
    if not title and not summary:
        # nothing to tell such entries apart: one article per feed at most
        scope = canonical_url(feed_url) or feed_url.strip()
        return ArticleIdentity(_sha256(f"empty\n{scope}"), "content", None)
    return ArticleIdentity(_sha256(f"content\n{title}\n{summary}"), "content", None)
