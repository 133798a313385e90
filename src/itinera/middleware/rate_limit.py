"""Per route: take a token from the caller's bucket, or refuse with 429."""

from __future__ import annotations

import asyncio
import logging
import time

from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from itinera import scope as request_scope
from itinera.errors import RateLimitedError, UnavailableError
from itinera.http import error_response
from itinera.metrics import Metrics
from itinera.ratelimit import Bucket, BucketRule, Decision

log = logging.getLogger(__name__)


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, rule: BucketRule) -> None:
        self.app = app
        self.rule = rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chosen = self.rule(scope)
        try:
            decision = await take_tokens(scope, chosen if isinstance(chosen, list) else [chosen])
        except (RateLimitedError, UnavailableError) as exc:
            await error_response(exc)(scope, receive, send)
            return
        if decision is None:  # Redis is out of reach and the limits fail open
            await self.app(scope, receive, send)
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


async def take_tokens(scope: Scope, chosen: list[Bucket]) -> Decision | None:
    """A token from every bucket of ``chosen`` (policy name, key), counted and logged.

    Raises ``RateLimitedError`` when a bucket is empty, and ``UnavailableError``
    when Redis cannot answer and limits fail closed; None when it cannot answer
    and they fail open.
    """
    resources = request_scope.resources(scope)
    limiter = resources.limiter
    buckets = [(limiter.policies[name], key) for name, key in chosen]
    try:
        # asyncio's own timeout: this runs on every request, and anyio's
        # cancel scope costs several times as much.
        async with asyncio.timeout(limiter.timeout_seconds):
            decision = await limiter.take(buckets, request_scope.round_trips(scope))
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
            return None
        raise UnavailableError("rate limits cannot be checked right now") from exc
    _count_decision(resources.metrics, decision)
    if not decision.allowed:
        raise RateLimitedError(
            [bucket.policy for bucket in decision.violated],
            decision.retry_after,
            quota_policy=decision.policy_header,
            quota_state=decision.state_header,
        )
    return decision


def _count_decision(metrics: Metrics, decision: Decision) -> None:
    """Per bucket: allowed, denied (it was empty), or nothing (another bucket refused)."""
    denied = {bucket.policy.name for bucket in decision.violated}
    for bucket in decision.buckets:
        if decision.allowed:
            metrics.rate_limit_decision(bucket.policy.name, "allowed")
        elif bucket.policy.name in denied:
            metrics.rate_limit_decision(bucket.policy.name, "denied")
