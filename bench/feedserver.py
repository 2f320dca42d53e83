"""Loopback HTTP server for the generated bench feeds, with conditional GET.

Serves `<dir>/base/*.xml` (or, after a switch, `<dir>/mutated/*.xml`) at `/f/NNNNN.xml`
on several loopback addresses (127.0.0.2, 127.0.0.3, ...; on Linux all of 127/8 is
local), all on one port, so a client's per-host limits behave as on the web. Every
feed has a strong ETag (a hash of its bytes) and a Last-Modified date; a request with
a matching If-None-Match (or, without one, an If-Modified-Since not older than the
feed, RFC 9110 13.1.3) gets 304. Bodies are gzipped when the client accepts it, as
news sites do; the gzip is computed once at start-up so it costs nothing per request.

It runs in its own process (the harness starts and stops it) so its CPU is not
counted in the client's. Admin endpoints, on any of the addresses:
  GET  /_admin/health                 200 "ok" once every address listens
  POST /_admin/variant?name=mutated   serve the mutated set (name=base: back)
  GET  /_admin/stats[?reset=1]        JSON counts by status, bytes sent; reset after

Usage: `python -m bench.feedserver --dir bench/work/feeds --hosts 20 --port 18470`;
it prints `READY <port>` on stdout when it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gzip
import hashlib
import json
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from aiohttp import web

VARIANTS = ("base", "mutated")


@dataclass(frozen=True)
class Doc:
    """One feed as served: body, its gzip, validators and content type."""

    body: bytes
    gzipped: bytes
    etag: str
    last_modified: dt.datetime
    content_type: str


def _content_type(body: bytes) -> str:
    head = body[:400]
    if b"<feed" in head:
        return "application/atom+xml; charset=utf-8"
    return "application/rss+xml; charset=utf-8"


def load_docs(feed_dir: Path) -> dict[str, dict[str, Doc]]:
    """Every variant's feeds by URL path; identical bytes share one Doc."""
    manifest = json.loads((feed_dir / "manifest.json").read_text())
    anchor = dt.datetime.fromisoformat(manifest["key"]["anchor"])
    by_hash: dict[str, Doc] = {}
    docs: dict[str, dict[str, Doc]] = {}
    for variant in VARIANTS:
        # A changed feed was modified after the base set was published.
        modified = anchor + dt.timedelta(hours=2 if variant == "mutated" else 0)
        docs[variant] = {}
        for f in manifest["feeds"]:
            body = (feed_dir / variant / Path(f["path"]).name).read_bytes()
            digest = hashlib.sha1(body).hexdigest()[:20]
            doc = by_hash.get(digest)
            if doc is None:
                doc = Doc(
                    body,
                    gzip.compress(body, compresslevel=6, mtime=0),
                    f'"{digest}"',
                    modified,
                    _content_type(body),
                )
                by_hash[digest] = doc
            docs[variant][f["path"]] = doc
    return docs


def _not_modified(request: web.Request, doc: Doc) -> bool:
    inm = request.headers.get("If-None-Match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or doc.etag in tags
    ims = request.headers.get("If-Modified-Since")
    if ims is not None:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        return doc.last_modified <= since
    return False


class FeedServer:
    """The aiohttp application state: current variant and request counters."""

    def __init__(self, docs: dict[str, dict[str, Doc]]) -> None:
        self.docs = docs
        self.variant = "base"
        self.stats: Counter[str] = Counter()

    async def feed(self, request: web.Request) -> web.StreamResponse:
        doc = self.docs[self.variant].get(request.path)
        if doc is None:
            self.stats["404"] += 1
            raise web.HTTPNotFound()
        headers = {
            "ETag": doc.etag,
            "Last-Modified": format_datetime(doc.last_modified, usegmt=True),
            "Cache-Control": "max-age=300",
            "Vary": "Accept-Encoding",
        }
        if _not_modified(request, doc):
            self.stats["304"] += 1
            return web.Response(status=304, headers=headers)
        self.stats["200"] += 1
        body = doc.body
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body = doc.gzipped
            headers["Content-Encoding"] = "gzip"
        self.stats["bytes"] += len(body)
        headers["Content-Type"] = doc.content_type
        return web.Response(body=body, headers=headers)

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def set_variant(self, request: web.Request) -> web.Response:
        name = request.query.get("name", "")
        if name not in self.docs:
            raise web.HTTPBadRequest(text=f"unknown variant {name!r}")
        self.variant = name
        return web.Response(text=name)

    async def get_stats(self, request: web.Request) -> web.Response:
        out = dict(self.stats, variant=self.variant)
        if request.query.get("reset"):
            self.stats.clear()
        return web.json_response(out)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_admin/health", self.health)
        app.router.add_post("/_admin/variant", self.set_variant)
        app.router.add_get("/_admin/stats", self.get_stats)
        app.router.add_get("/f/{name}", self.feed)
        return app


def host_address(host_index: int) -> str:
    """The loopback address serving feeds with this host index."""
    return f"127.0.0.{2 + host_index}"


async def serve(feed_dir: Path, hosts: int, port: int) -> None:
    server = FeedServer(load_docs(feed_dir))
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    for h in range(hosts):
        # backlog: a cold poll opens hundreds of connections at once.
        await web.TCPSite(runner, host_address(h), port, backlog=1024).start()
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="output of bench.gen_feeds")
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--port", type=int, default=18470)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.dir, args.hosts, args.port))
    except OSError as exc:
        print(f"feedserver: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
