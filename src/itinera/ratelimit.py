"""Token buckets in Redis: one atomic round trip per decision."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from itinera.settings import Settings

WINDOW_SECONDS = 60

# KEYS[1] bucket; ARGV[1] capacity; ARGV[2] tokens per second.
# Time comes from the server, so every replica shares one clock. The state is
# a hash {tokens, ts}; it expires once it would have refilled completely.
# Returns {allowed, whole tokens left, seconds until the next token or -1 if full}.
TOKEN_BUCKET = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
local whole = math.floor(tokens)
local wait = -1
if whole < capacity then
  wait = math.ceil((whole + 1 - tokens) / rate)
  if wait < 1 then wait = 1 end
end
return {allowed, whole, wait}
"""


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    capacity: int
    window_seconds: int = WINDOW_SECONDS

    @property
    def refill_per_second(self) -> float:
        return self.capacity / self.window_seconds

    @property
    def header(self) -> str:
        return f'"{self.name}";q={self.capacity};w={self.window_seconds}'


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    reset_seconds: int | None  # until the next token; None when the bucket is full

    def header(self, policy: Policy) -> str:
        value = f'"{policy.name}";r={self.remaining}'
        if self.reset_seconds is not None:
            value += f";t={self.reset_seconds}"
        return value


def policies(settings: Settings) -> dict[str, Policy]:
    return {
        "agent": Policy("agent", settings.rate_limit_agent_per_minute),
        "crud": Policy("crud", settings.rate_limit_crud_per_minute),
        "auth": Policy("auth", settings.rate_limit_auth_per_minute),
    }


SCRIPT_SHA = hashlib.sha1(TOKEN_BUCKET.encode(), usedforsecurity=False).hexdigest()


class RateLimiter:
    """Decides with one EVALSHA; a server that lost its scripts (NOSCRIPT) gets it again."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.policies = policies(settings)
        self.timeout_seconds = settings.redis_timeout_seconds
        self.fail_open = settings.rate_limit_fail_open
        self.outage_warnings = WarningThrottle()
        self._redis = redis

    async def take(self, policy: Policy, key: str) -> Decision:
        args = (policy.capacity, policy.refill_per_second)
        try:
            reply = await self._redis.evalsha(SCRIPT_SHA, 1, key, *args)
        except NoScriptError:
            await self._redis.script_load(TOKEN_BUCKET)
            reply = await self._redis.evalsha(SCRIPT_SHA, 1, key, *args)
        allowed, remaining, wait = reply
        return Decision(bool(allowed), int(remaining), None if int(wait) < 0 else int(wait))


def bucket_key(identity: str, bucket: str) -> str:
    """``{identity}`` is a hash tag: one user's buckets share a Redis Cluster slot."""
    return f"itinera:rl:{{{identity}}}:{bucket}"


class WarningThrottle:
    """Lets a warning through at most once per interval (Redis outages repeat per request)."""

    def __init__(self, interval_seconds: float = 60.0) -> None:
        self.interval = interval_seconds
        self._last: float | None = None

    def should_warn(self, now: float) -> bool:
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True
