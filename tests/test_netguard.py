"""sources.netguard: which addresses a fetch hop may reach (no network: a table resolver)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from sources.errors import Refused
from sources.netguard import GuardedResolver, IPAddress, NetGuard, address_kind

# Names resolve from this table only; nothing leaves the machine.
HOSTS = {
    "news.example": ["93.184.216.34"],
    "intranet.example": ["10.1.2.3"],
    "mixed.example": ["93.184.216.34", "169.254.169.254"],
    "localhost": ["127.0.0.1"],
    "rebound.example": ["169.254.169.254"],
}


async def table_resolver(host: str, port: int) -> list[IPAddress]:
    if host not in HOSTS:
        raise OSError(f"unknown host {host}")
    return [ipaddress.ip_address(a) for a in HOSTS[host]]


GUARD = NetGuard(resolver=table_resolver)


def check(url: str, *, allow_private: bool) -> bool:
    return asyncio.run(GUARD.check(url, allow_private=allow_private))


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.216.34", "public"),
        ("2606:2800:220:1::", "public"),
        ("127.0.0.1", "private"),
        ("::1", "private"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),  # carrier-grade NAT
        ("fc00::1", "private"),
        ("0.0.0.0", "private"),
        ("169.254.169.254", "forbidden"),
        ("169.254.1.1", "forbidden"),
        ("fe80::1", "forbidden"),
        ("::ffff:169.254.169.254", "forbidden"),
        ("fd00:ec2::254", "forbidden"),
        ("100.100.100.200", "forbidden"),
        ("224.0.0.1", "forbidden"),
    ],
)
def test_address_kind(address: str, kind: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_public_host_is_allowed_and_reported_public() -> None:
    assert check("https://news.example/rss", allow_private=False) is True


def test_private_host_is_allowed_when_private_is_allowed() -> None:
    assert check("http://intranet.example/rss", allow_private=True) is False


def test_loopback_literal_is_allowed_when_private_is_allowed() -> None:
    assert check("http://127.0.0.1:8080/rss", allow_private=True) is False


@pytest.mark.parametrize(
    "url", ["http://intranet.example/rss", "http://localhost/rss", "http://[::1]/rss"]
)
def test_private_host_is_refused_when_private_is_not_allowed(url: str) -> None:
    with pytest.raises(Refused, match="non-public address"):
        check(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://mixed.example/rss",  # one bad address among good ones is enough
    ],
)
def test_link_local_and_metadata_are_refused_even_when_private_is_allowed(url: str) -> None:
    with pytest.raises(Refused):
        check(url, allow_private=True)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://news.example/rss", "gopher://x/"])
def test_non_http_schemes_are_refused(url: str) -> None:
    with pytest.raises(Refused, match="only http and https"):
        check(url, allow_private=True)


def test_unresolvable_host_is_left_to_the_http_client() -> None:
    assert check("http://no-such-host.example/rss", allow_private=False) is True


def test_refusal_is_one_line_naming_the_url_and_address() -> None:
    with pytest.raises(Refused) as caught:
        check("http://localhost/rss", allow_private=False)
    assert str(caught.value).startswith("refused http://localhost/rss: localhost resolves to")
    assert "127.0.0.1" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_system_resolver_resolves_localhost() -> None:
    guard = NetGuard()
    with pytest.raises(Refused):
        asyncio.run(guard.check("http://localhost/rss", allow_private=False))


class TableAiohttpResolver(AbstractResolver):
    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET, proto=0, flags=0)
            for a in HOSTS[host]
        ]

    async def close(self) -> None:
        pass


def test_connect_time_resolver_drops_metadata_addresses() -> None:
    resolver = GuardedResolver(TableAiohttpResolver())
    results = asyncio.run(resolver.resolve("mixed.example", 80))
    assert [r["host"] for r in results] == ["93.184.216.34"]


def test_connect_time_resolver_fails_a_name_with_only_metadata_addresses() -> None:
    with pytest.raises(OSError, match="link-local or metadata"):
        asyncio.run(GuardedResolver(TableAiohttpResolver()).resolve("rebound.example", 80))


def test_connect_time_resolver_keeps_private_addresses_for_trusted_feeds() -> None:
    results = asyncio.run(GuardedResolver(TableAiohttpResolver()).resolve("localhost", 80))
    assert [r["host"] for r in results] == ["127.0.0.1"]
