"""Where a feed fetch may connect: the guard against server-side request forgery.

newswatch fetches URLs that come from feeds and servers it does not control (a
redirect, a `<link rel="alternate">`, an imported OPML file). Without a guard, such a
URL could make the poller read the cloud metadata service or an intranet admin page
and store the answer where users can see it. `NetGuard.check` is called on every hop
of every fetch, before any connection is made, and raises `Refused` when:

- the scheme is not http or https;
- the host resolves to a link-local address (169.254.0.0/16, fe80::/10) or a known
  cloud metadata address (169.254.169.254, fd00:ec2::254, 100.100.100.200, ...):
  refused always, even for URLs the operator listed;
- the host resolves to a non-public address (loopback, private, CGNAT, unspecified,
  reserved, unique-local) and private addresses are not allowed for this hop: the URL
  was not listed by the operator (`trusted=False`), or an earlier hop of the same
  redirect chain was public (a public server must not bounce us into the LAN).

A host that does not resolve is let through: there is nothing to connect to, and the
HTTP client reports the DNS failure as a connection error.

An operator-listed URL (`trusted=True`) may point at loopback or private addresses,
and redirect within them: tests and intranet feeds need that.

`GuardedResolver` repeats the link-local/metadata part at connect time for the
default (aiohttp) transport: whatever a name resolved to during the check, the
connection itself never goes to such an address.

What it does not defend against:

- DNS rebinding into private space: the name is resolved here and again by the HTTP
  client when it connects. A hostile DNS server that answers "public" to the first
  query and "private" to the second gets an untrusted URL into the LAN or loopback
  (not to link-local or metadata addresses, which `GuardedResolver` drops; with
  another transport, not even that). Closing it needs the connection pinned to the
  checked address, which the HTTP clients we use do not offer per request.
- Proxies: newswatch does not use HTTP proxies (environment proxies are ignored);
  with one, the proxy would resolve names and this check would be moot.
- Anything an allowed address serves: a public server can still answer with a huge,
  slow or hostile body (the fetcher's caps and deadlines handle that) and a trusted
  private URL is trusted entirely.
- Other protocols smuggled into http (e.g. a public host that proxies to the
  metadata service itself).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from sources.errors import Refused

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver: TypeAlias = Callable[[str, int], Awaitable[Sequence[IPAddress]]]

# Link-local covers AWS/GCP/Azure/OpenStack metadata (169.254.169.254) and
# fe80::/10; the rest are metadata endpoints outside link-local space.
_FORBIDDEN_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
    ipaddress.ip_network("192.0.0.192/32"),  # Oracle Cloud metadata
)
_FORBIDDEN_NAMES = frozenset({"metadata.google.internal", "metadata", "instance-data"})


def address_kind(ip: IPAddress) -> str:
    """Classify an address: "forbidden" (never), "private" (trusted URLs only) or "public"."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    if any(ip in net for net in _FORBIDDEN_NETWORKS) or ip.is_multicast:
        return "forbidden"
    if ip.is_global:
        return "public"
    return "private"


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve `host` with the system resolver (getaddrinfo), without blocking the loop."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


@dataclass(frozen=True, slots=True)
class NetGuard:
    """Checks each hop of a fetch; `resolver` is a seam for tests."""

    resolver: Resolver = system_resolver

    async def check(self, url: str, *, allow_private: bool) -> bool:
        """Raise `Refused` if newswatch must not connect to `url`; else say if it is public.

        Returns True when every address of the host is public: after such a hop,
        the rest of the redirect chain must stay public.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise Refused(f"refused {url}: only http and https URLs are fetched")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise Refused(f"refused {url}: the URL has no host")
        if host in _FORBIDDEN_NAMES:
            raise Refused(f"refused {url}: {host} is a cloud metadata service")
        try:
            addresses: Sequence[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                raise Refused(f"refused {url}: the port is not a number") from None
            try:
                addresses = await self.resolver(host, port)
            except OSError:
                # Not resolvable now: nothing to connect to, so nothing to guard;
                # the HTTP client reports the DNS failure as a connection error.
                return True
        kinds = {address_kind(ip) for ip in addresses}
        # A host with one forbidden address among others is refused: the client
        # might pick that one.
        if "forbidden" in kinds:
            bad = next(ip for ip in addresses if address_kind(ip) == "forbidden")
            raise Refused(
                f"refused {url}: {host} resolves to {bad}, a link-local or metadata address"
            )
        if "private" in kinds and not allow_private:
            bad = next(ip for ip in addresses if address_kind(ip) == "private")
            raise Refused(
                f"refused {url}: {host} resolves to the non-public address {bad}, "
                "allowed only for feed URLs listed by the operator and their private redirects"
            )
        return kinds == {"public"}


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that never hands out link-local or metadata addresses.

    Applied at connect time, so a name that re-resolves between `NetGuard.check`
    and the connection still cannot reach them. A name with only such addresses
    fails to resolve (the fetch reports a connection failure).
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [
            r
            for r in results
            if address_kind(ipaddress.ip_address(r["host"].split("%", 1)[0])) != "forbidden"
        ]
        if not allowed:
            raise OSError(f"{host} resolves only to link-local or metadata addresses: refused")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
