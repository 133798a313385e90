"""The client address behind trusted proxies: every line of X-Forwarded-For, read from the right."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import httpx
import pytest

from itinera.buckets import forwarded_client
from itinera.settings import Settings
from tests.support.app import running_app
from tests.support.rate_limits import limited, remaining, unique_address, unique_proxy
from tests.support.tenants import Tenant

# The test client's peer is 127.0.0.1; 10.0.0.0/8 stands for the proxies in front of it.
BEHIND_PROXIES = ("127.0.0.1", "10.0.0.0/8")

TRUSTED = tuple(ipaddress.ip_network(network) for network in BEHIND_PROXIES)


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("127.0.0.1", [], "127.0.0.1"),
        ("203.0.113.1", ["9.9.9.9"], "203.0.113.1"),  # an untrusted peer's header is ignored
        ("127.0.0.1", ["6.6.6.1", "9.9.9.9"], "9.9.9.9"),
        ("127.0.0.1", ["6.6.6.1, 9.9.9.9"], "9.9.9.9"),
        ("127.0.0.1", ["9.9.9.9, 10.0.0.2", "10.0.0.3"], "9.9.9.9"),
        ("127.0.0.1", ["10.0.0.5, 10.0.0.6"], "10.0.0.5"),  # every hop trusted: the farthest
        ("127.0.0.1", ["", " , 9.9.9.9 ,"], "9.9.9.9"),  # empty elements are no entries
        ("127.0.0.1", ["9.9.9.9, unknown"], "127.0.0.1"),  # malformed: the hop that sent it
        ("127.0.0.1", ["9.9.9.9", "not-an-ip", "10.0.0.7"], "10.0.0.7"),
        ("127.0.0.1", ["9.9.9.9:4711"], "9.9.9.9"),
        ("127.0.0.1", ["[2001:DB8:0::1]:443"], "2001:db8::1"),
        ("127.0.0.1", ["[2001:db8::1"], "127.0.0.1"),
        ("::ffff:127.0.0.1", ["9.9.9.9"], "9.9.9.9"),  # a dual-stack socket's IPv4 peer
        ("unknown", ["9.9.9.9"], "unknown"),
    ],
)
def test_the_client_is_the_first_untrusted_address_from_the_right(
    peer: str, forwarded: list[str], client: str
) -> None:
    assert forwarded_client(peer, forwarded, TRUSTED) == client


def wrong_password(tenant: Tenant) -> dict[str, str]:
    return {"org": tenant.slug, "email": tenant.member.email, "password": "wrong"}


async def login_with(
    client: httpx.AsyncClient, tenant: Tenant, forwarded: Sequence[str | bytes]
) -> httpx.Response:
    """A login whose X-Forwarded-For is one header line per item of ``forwarded``."""
    headers = [
        (b"X-Forwarded-For", line if isinstance(line, bytes) else line.encode("latin-1"))
        for line in forwarded
    ]
    return await client.post("/v1/auth/login", json=wrong_password(tenant), headers=headers)


async def test_a_second_forwarded_line_does_not_buy_a_fresh_login_bucket(
    settings: Settings, tenant: Tenant
) -> None:
    # The attack: the client writes the first line, the proxy appends a second
    # one with the real address; reading only the first line let every guess
    # pick its own bucket.
    client_address = unique_address()
    behind_proxy = limited(settings, auth=3).replace(trusted_proxies=BEHIND_PROXIES)
    async with running_app(behind_proxy) as client:
        answers = [
            await login_with(client, tenant, [f"6.6.6.{n}", client_address]) for n in range(5)
        ]
        joined = await login_with(client, tenant, [f"6.6.6.9, {client_address}"])
    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
    assert [remaining(a, "auth") for a in answers] == [2, 1, 0, 0, 0]
    assert joined.status_code == 429


async def test_the_lines_form_one_list_whose_trusted_hops_are_skipped(
    settings: Settings, tenant: Tenant
) -> None:
    client_address = unique_address()
    behind_proxy = limited(settings, auth=3).replace(trusted_proxies=BEHIND_PROXIES)
    async with running_app(behind_proxy) as client:
        answers = [
            await login_with(client, tenant, forwarded)
            for forwarded in (
                [client_address],
                [f"6.6.6.6, {client_address}, {unique_proxy()}"],
                ["6.6.6.6", f"{client_address}, {unique_proxy()}", f"{unique_proxy()}, 127.0.0.1"],
            )
        ]
    assert [remaining(a, "auth") for a in answers] == [2, 1, 0]


async def test_a_malformed_entry_never_fails_and_never_picks_a_bucket(
    settings: Settings, tenant: Tenant
) -> None:
    # Entries that are not addresses end the walk at the trusted hop that
    # wrote them: whatever they say, they all count against that hop.
    proxy = unique_proxy()
    garbage: list[str | bytes] = [
        "unknown",
        "6.6.6.999",
        "2001:db8::zz",
        "[6.6.6.6",
        "}{ip:6.6.6.6}",
        b"\xff\xfe",
        "x" * 2000,
    ]
    behind_proxy = limited(settings, auth=len(garbage) - 2).replace(trusted_proxies=BEHIND_PROXIES)
    async with running_app(behind_proxy) as client:
        answers = [await login_with(client, tenant, [entry, proxy]) for entry in garbage]
    assert [a.status_code for a in answers] == [401] * (len(garbage) - 2) + [429] * 2


async def test_addresses_with_ports_and_brackets_are_the_same_client(
    settings: Settings, tenant: Tenant
) -> None:
    address = unique_address()
    behind_proxy = limited(settings, auth=4).replace(trusted_proxies=BEHIND_PROXIES)
    async with running_app(behind_proxy) as client:
        answers = [
            await login_with(client, tenant, [forwarded])
            for forwarded in (address, f"[{address}]", f"[{address}]:4711", address.upper())
        ]
    assert [remaining(a, "auth") for a in answers] == [3, 2, 1, 0]
