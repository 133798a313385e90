"""Which buckets a request takes from: the caller's own, or its client address's.

Rules are route attributes (``Operation.bucket``); the rate-limit middleware
applies them. The client address is the peer, or read from ``X-Forwarded-For``
when the peer is a trusted proxy.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable

import msgspec
from starlette.types import Scope

from itinera import scope as request_scope
from itinera.http import UNDECODABLE
from itinera.ratelimit import Bucket, bucket_key

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_WITH_PORT = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::[0-9]{1,5})?|([0-9.]+):[0-9]{1,5}")


def per_user(bucket: str) -> Callable[[Scope], Bucket]:
    def rule(scope: Scope) -> Bucket:
        principal = request_scope.principal(scope)
        assert principal is not None, "a per-user bucket needs an authenticated route"
        return bucket, bucket_key(f"user:{principal.user_id}", bucket)

    return rule


def client_ip(scope: Scope) -> str:
    """The peer, or the client its trusted proxies name in X-Forwarded-For."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    trusted = request_scope.resources(scope).settings.trusted_proxy_networks
    if not trusted:
        return peer
    return forwarded_client(peer, request_scope.header_lines(scope, b"x-forwarded-for"), trusted)


def forwarded_client(peer: str, forwarded: list[str], trusted: tuple[Network, ...]) -> str:
    """The client: the first untrusted address from the right of the peer and X-Forwarded-For.

    All lines of the header are one list (RFC 9110 §5.3), each proxy appending
    the address that connected to it: only what lies right of the first
    untrusted address was written by a proxy we trust, so that address is the
    client. An entry that is not an address ends the walk at the trusted hop
    that passed it on; used as a key, it would let its author pick a fresh
    bucket per request. When every hop is trusted, the client is the farthest.
    """
    client = _address(peer)
    if client is None:
        return peer
    if not _within(client, trusted):
        return str(client)
    for entry in reversed(",".join(forwarded).split(",")):
        entry = entry.strip()
        if not entry:
            continue  # empty list elements are ignored (RFC 9110 §5.6.1)
        hop = _address(entry)
        if hop is None:
            break
        client = hop
        if not _within(hop, trusted):
            break
    return str(client)


def _address(text: str) -> Address | None:
    """An address as proxies write it: bare, ``a.b.c.d:port``, ``[v6]`` or ``[v6]:port``."""
    with_port = _WITH_PORT.fullmatch(text)
    try:
        address = ipaddress.ip_address(with_port[1] or with_port[2] if with_port else text)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


class _EmailOnly(msgspec.Struct):
    email: str | None = None


def login_buckets(scope: Scope) -> list[Bucket]:
    """Login: ``auth`` per client IP and email, so one address cannot lock out everyone
    behind a NAT; ``auth-ip`` per client IP, so one address cannot spray many emails.

    Both keys carry the client IP as their hash tag: one EVALSHA takes both.
    """
    try:
        email = msgspec.json.decode(request_scope.body(scope), type=_EmailOnly).email or ""
    except UNDECODABLE:
        email = ""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    client = f"ip:{client_ip(scope)}"
    return [
        ("auth", bucket_key(client, f"auth:login:{digest}")),
        ("auth-ip", bucket_key(client, "auth-ip:login")),
    ]


def key_lookup_bucket(scope: Scope) -> Bucket:
    """An API key not seen before costs a database lookup: like a login attempt, it
    takes from its address's ``auth-ip`` bucket, so guessing keys is bounded too."""
    return "auth-ip", bucket_key(f"ip:{client_ip(scope)}", "auth-ip:login")


def refresh_bucket(scope: Scope) -> Bucket:
    return "auth", bucket_key(f"ip:{client_ip(scope)}", "auth:refresh")
