"""Token buckets in Redis: one atomic round trip per decision."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException
from starlette.types import Scope

from itinera.multiplexed_redis import MultiplexedConnection
from itinera.round_trips import RoundTrips
from itinera.settings import Settings
from itinera.tracing import current_tracer

WINDOW_SECONDS = 60

# A bucket to take a token from: the policy's name and the caller's key.
Bucket = tuple[str, str]
# A route's buckets: a policy name (keyed by the caller), or a rule that picks
# them from the request (public routes, body-dependent buckets). Several buckets
# are taken in one round trip, all or none; their keys must share a hash tag.
BucketRule = Callable[[Scope], Bucket | list[Bucket]]

# KEYS: the buckets of one decision; ARGV[2i-1], ARGV[2i]: capacity and tokens
# per second of KEYS[i]. All or none: the request is allowed only when every
# bucket holds a token, and then takes one from each, so a request refused by
# one bucket spends nothing of the others.
# Time comes from the server, so every replica shares one clock. A state is a
# hash {tokens, ts}; it expires once it would have refilled completely.
# Returns {allowed, then per bucket: whole tokens left, seconds until the next
# token or -1 if full}.
TOKEN_BUCKETS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local levels = {}
local allowed = 1
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil or ts == nil then
    tokens = capacity
    ts = now
  end
  tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
  if tokens < 1 then allowed = 0 end
  levels[i] = tokens
end
local reply = {allowed}
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  local tokens = levels[i] - allowed
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('EXPIRE', key, math.ceil(capacity / rate) + 1)
  local whole = math.floor(tokens)
  local wait = -1
  if whole < capacity then
    wait = math.ceil((whole + 1 - tokens) / rate)
    if wait < 1 then wait = 1 end
  end
  reply[2 * i] = whole
  reply[2 * i + 1] = wait
end
return reply
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
class BucketState:
    """One bucket after a decision."""

    policy: Policy
    remaining: int
    reset_seconds: int | None  # until the next token; None when the bucket is full

    @property
    def header(self) -> str:
        value = f'"{self.policy.name}";r={self.remaining}'
        if self.reset_seconds is not None:
            value += f";t={self.reset_seconds}"
        return value


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    buckets: tuple[BucketState, ...]

    @property
    def violated(self) -> tuple[BucketState, ...]:
        """The buckets that refused: empty ones (a refusal takes no token, so 0 means empty)."""
        if self.allowed:
            return ()
        return tuple(bucket for bucket in self.buckets if bucket.remaining == 0)

    @property
    def retry_after(self) -> int:
        """Whole seconds until every empty bucket holds a token again (at least 1)."""
        return max((bucket.reset_seconds or 1 for bucket in self.violated), default=1)

    @property
    def policy_header(self) -> str:
        return ", ".join(bucket.policy.header for bucket in self.buckets)

    @property
    def state_header(self) -> str:
        return ", ".join(bucket.header for bucket in self.buckets)


def policies(settings: Settings) -> dict[str, Policy]:
    return {
        "agent": Policy("agent", settings.rate_limit_agent_per_minute),
        "crud": Policy("crud", settings.rate_limit_crud_per_minute),
        "auth": Policy("auth", settings.rate_limit_auth_per_minute),
        "auth-ip": Policy("auth-ip", settings.rate_limit_auth_ip_per_minute),
        "state": Policy("state", settings.rate_limit_state_per_minute),
    }


SCRIPT_SHA = hashlib.sha1(TOKEN_BUCKETS.encode(), usedforsecurity=False).hexdigest()


class RateLimiter:
    """Decides with one EVALSHA; a server that lost its scripts (NOSCRIPT) gets it again.

    On Redis Cluster a decision runs on the primary owning its keys' slot (they
    share a hash tag), with that primary's clock; each primary keeps its own
    script cache, so the script is loaded again where NOSCRIPT came from.
    """

    def __init__(self, redis: Redis | RedisCluster, settings: Settings) -> None:
        self.policies = policies(settings)
        self.timeout_seconds = settings.redis_timeout_seconds
        self.fail_open = settings.rate_limit_fail_open
        self.outage_warnings = WarningThrottle()
        self._redis = redis
        # Every decision's EVALSHA on one connection, in flight together
        # (Redis Cluster: redis-py's client, which routes each by its keys).
        self._multiplexed = (
            None
            if isinstance(redis, RedisCluster)
            else MultiplexedConnection(redis.connection_pool, stall_seconds=self.timeout_seconds)
        )

    async def take(
        self, buckets: Sequence[tuple[Policy, str]], round_trips: RoundTrips | None = None
    ) -> Decision:
        """A token from every bucket (policy, key), or from none when any of them is empty."""
        counted = RoundTrips() if round_trips is None else round_trips
        keys = [key for _, key in buckets]
        if len(keys) > 1 and len({hash_tag(key) for key in keys}) > 1:
            # Redis Cluster would answer CROSSSLOT, and an unavailable limiter fails open.
            raise ValueError(f"the keys of one decision must share a hash tag: {keys}")
        args = [n for policy, _ in buckets for n in (policy.capacity, policy.refill_per_second)]
        # In a traced request, each round trip below is a span of its own.
        tracer = current_tracer()
        plain = self._redis.evalsha if self._multiplexed is None else self._evalsha
        evalsha = plain if tracer is None else tracer.redis_command("EVALSHA", plain)
        try:
            if isinstance(self._redis, RedisCluster):
                # Until it has read the slot map, redis-py sends a keyed command
                # to a random primary; a burst of MOVED replies then makes it
                # close every connection, cutting off the decisions in flight.
                await self._redis.initialize()
            try:
                counted.redis += 1
                reply = await evalsha(SCRIPT_SHA, len(keys), *keys, *args)
            except NoScriptError:
                counted.redis += 2
                load = (
                    self._load_script
                    if tracer is None
                    else tracer.redis_command("SCRIPT LOAD", self._load_script)
                )
                await load(keys[0])
                reply = await evalsha(SCRIPT_SHA, len(keys), *keys, *args)
        except RedisClusterException as exc:
            # Not a RedisError: no node answered for the slot map, or a slot
            # has no owner. Either way the limiter cannot decide right now.
            raise RedisConnectionError(f"Redis Cluster unavailable: {exc}") from exc
        allowed, *states = reply
        return Decision(
            bool(allowed),
            tuple(
                BucketState(policy, int(left), None if int(wait) < 0 else int(wait))
                for (policy, _), left, wait in zip(buckets, states[::2], states[1::2], strict=True)
            ),
        )

    async def _evalsha(self, *arguments: str | int | float) -> Any:
        assert self._multiplexed is not None
        return await self._multiplexed.execute("EVALSHA", *arguments)

    async def aclose(self) -> None:
        """Close the decisions' connection (the client passed in is the caller's to close)."""
        if self._multiplexed is not None:
            await self._multiplexed.aclose()

    async def _load_script(self, key: str) -> None:
        if not isinstance(self._redis, RedisCluster):
            await self._redis.script_load(TOKEN_BUCKETS)
            return
        # redis-py sends SCRIPT LOAD to every primary and fails when any one
        # of them is down, which would fail this decision too though its own
        # primary is up. NOSCRIPT came from the primary owning the key's slot
        # (EVALSHA is routed by its keys): load it there.
        owner = self._redis.get_node_from_key(key)
        await self._redis.execute_command("SCRIPT LOAD", TOKEN_BUCKETS, target_nodes=owner)


def bucket_key(identity: str, bucket: str) -> str:
    """``{identity}`` is a hash tag: one user's buckets share a Redis Cluster slot."""
    return f"itinera:rl:{{{identity}}}:{bucket}"


def hash_tag(key: str) -> str:
    """The part of ``key`` Redis Cluster hashes: the first non-empty ``{…}``, else all of it."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] if start >= 0 and end > start + 1 else key


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
