"""Per route: take a token from the caller's bucket, or refuse with 429."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import re
import time
from collections.abc import Callable

import msgspec
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from itinera import scope as request_scope
from itinera.http import QUOTA_EXCEEDED, UNDECODABLE, problem_response
from itinera.metrics import Metrics
from itinera.ratelimit import Bucket, BucketRule, Decision, bucket_key

log = logging.getLogger(__name__)

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


def refresh_bucket(scope: Scope) -> Bucket:
    return "auth", bucket_key(f"ip:{client_ip(scope)}", "auth:refresh")


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, rule: BucketRule) -> None:
        self.app = app
        self.rule = rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resources = request_scope.resources(scope)
        limiter = resources.limiter
        chosen = self.rule(scope)
        buckets = [
            (limiter.policies[name], key)
            for name, key in (chosen if isinstance(chosen, list) else [chosen])
        ]
        try:
            # asyncio's own timeout: this runs on every request, and anyio's
            # cancel scope costs several times as much.
            async with asyncio.timeout(limiter.timeout_seconds):
                decision = await limiter.take(buckets)
        except (RedisError, OSError, TimeoutError) as exc:
            for policy, _ in buckets:
                resources.metrics.rate_limit_decision(policy.name, "unavailable")
            if limiter.outage_warnings.should_warn(time.monotonic()):
                log.warning(
                    "rate limits unavailable (%s); failing %s",
                    type(exc).__name__,
                    "open" if limiter.fail_open else "closed",
                )
            if limiter.fail_open:
                await self.app(scope, receive, send)
                return
            response = problem_response(
                503, "rate limits cannot be checked right now", headers={"Retry-After": "1"}
            )
            await response(scope, receive, send)
            return
        _count_decision(resources.metrics, decision)
        if not decision.allowed:
            await self._refuse(scope, receive, send, decision)
            return
        fields = [
            (b"ratelimit-policy", decision.policy_header.encode()),
            (b"ratelimit", decision.state_header.encode()),
        ]

        async def send_with_rate_limit_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *fields]}
            await send(message)

        await self.app(scope, receive, send_with_rate_limit_fields)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, decision: Decision) -> None:
        violated = [bucket.policy for bucket in decision.violated]
        limits = " and ".join(
            f"the {p.name!r} limit of {p.capacity} requests per {p.window_seconds} s"
            for p in violated
        )
        retry_after = decision.retry_after
        response = problem_response(
            429,
            f"{limits} {'is' if len(violated) == 1 else 'are'} used up; retry in {retry_after} s",
            type=QUOTA_EXCEEDED,
            title="Quota exceeded",
            violated_policies=[p.name for p in violated],
            headers={
                "RateLimit-Policy": decision.policy_header,
                "RateLimit": decision.state_header,
                "Retry-After": str(retry_after),
            },
        )
        await response(scope, receive, send)


def _count_decision(metrics: Metrics, decision: Decision) -> None:
    """Per bucket: allowed, denied (it was empty), or nothing (another bucket refused)."""
    denied = {bucket.policy.name for bucket in decision.violated}
    for bucket in decision.buckets:
        if decision.allowed:
            metrics.rate_limit_decision(bucket.policy.name, "allowed")
        elif bucket.policy.name in denied:
            metrics.rate_limit_decision(bucket.policy.name, "denied")
