"""Per route: take a token from the caller's bucket, or refuse with 429."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable

import msgspec
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from itinera import scope as request_scope
from itinera.http import QUOTA_EXCEEDED, UNDECODABLE, problem_response
from itinera.ratelimit import Decision, Policy, bucket_key

log = logging.getLogger(__name__)

# A route's bucket: a policy name (keyed by the caller), or a rule that picks
# the policy and the key from the request (public routes, body-dependent buckets).
BucketRule = Callable[[Scope], tuple[str, str]]


def per_user(bucket: str) -> BucketRule:
    def rule(scope: Scope) -> tuple[str, str]:
        principal = request_scope.principal(scope)
        assert principal is not None, "a per-user bucket needs an authenticated route"
        return bucket, bucket_key(f"user:{principal.user_id}", bucket)

    return rule


def client_ip(scope: Scope) -> str:
    """The peer, or the nearest untrusted address in X-Forwarded-For when the peer is a proxy."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    trusted = request_scope.resources(scope).settings.trusted_proxy_networks
    if not trusted or not _within(peer, trusted):
        return peer
    forwarded = request_scope.header(scope, b"x-forwarded-for") or ""
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if not _within(hop, trusted):
            return hop
    return peer


def _within(
    address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class _EmailOnly(msgspec.Struct):
    email: str | None = None


def login_bucket(scope: Scope) -> tuple[str, str]:
    """Login: per client IP and email, so one address cannot lock out everyone behind a NAT."""
    try:
        email = msgspec.json.decode(request_scope.body(scope), type=_EmailOnly).email or ""
    except UNDECODABLE:
        email = ""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return "auth", bucket_key(f"ip:{client_ip(scope)}", f"auth:login:{digest}")


def refresh_bucket(scope: Scope) -> tuple[str, str]:
    return "auth", bucket_key(f"ip:{client_ip(scope)}", "auth:refresh")


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, rule: BucketRule) -> None:
        self.app = app
        self.rule = rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resources = request_scope.resources(scope)
        limiter = resources.limiter
        name, key = self.rule(scope)
        policy = limiter.policies[name]
        try:
            # asyncio's own timeout: this runs on every request, and anyio's
            # cancel scope costs several times as much.
            async with asyncio.timeout(limiter.timeout_seconds):
                decision = await limiter.take(policy, key)
        except (RedisError, OSError, TimeoutError) as exc:
            resources.metrics.rate_limit_decision(name, "unavailable")
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
        resources.metrics.rate_limit_decision(name, "allowed" if decision.allowed else "denied")
        if not decision.allowed:
            await self._refuse(scope, receive, send, policy, decision)
            return
        fields = _fields(policy, decision)

        async def send_with_rate_limit_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *fields]}
            await send(message)

        await self.app(scope, receive, send_with_rate_limit_fields)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, policy: Policy, decision: Decision
    ) -> None:
        retry_after = decision.reset_seconds or 1
        response = problem_response(
            429,
            f"the {policy.name!r} limit of {policy.capacity} requests per "
            f"{policy.window_seconds} s is used up; retry in {retry_after} s",
            type=QUOTA_EXCEEDED,
            title="Quota exceeded",
            violated_policies=[policy.name],
            headers={
                "RateLimit-Policy": policy.header,
                "RateLimit": decision.header(policy),
                "Retry-After": str(retry_after),
            },
        )
        await response(scope, receive, send)


def _fields(policy: Policy, decision: Decision) -> list[tuple[bytes, bytes]]:
    return [
        (b"ratelimit-policy", policy.header.encode()),
        (b"ratelimit", decision.header(policy).encode()),
    ]
