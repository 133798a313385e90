"""What a request may use: built by the lifespan, found in every request's scope."""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis, RedisCluster

from itinera.db.engine import Database
from itinera.db.schema import ExpectedSchema
from itinera.metrics import Metrics
from itinera.pagination import CursorCodec
from itinera.ratelimit import RateLimiter
from itinera.security.passwords import PasswordHasher
from itinera.security.principal import Principal
from itinera.security.tokens import AccessTokens
from itinera.settings import Settings
from itinera.tracing import Tracer


class RememberedApiKeys:
    """API keys resolved to their user a moment ago, by the SHA-256 of the key.

    Resolving a key costs a transaction of its own (three round trips); a
    machine client sends the same key with every request, so the answer is
    kept for ``seconds``. Nothing is trusted from here alone: the statement
    that opens each request's transaction checks the key and its user again
    (``itinera_begin_key``), so revoking or disabling still acts at once. Kept
    short all the same, so that a replica forgets a revoked key soon.
    """

    def __init__(self, *, seconds: float = 60.0, remembered: int = 10_000) -> None:
        self._seconds = seconds
        self._remembered = remembered
        self._principals: dict[bytes, tuple[Principal, float]] = {}

    def recall(self, key_hash: bytes) -> Principal | None:
        known = self._principals.get(key_hash)
        if known is None:
            return None
        principal, good_until = known
        if time.monotonic() < good_until:
            return principal
        del self._principals[key_hash]
        return None

    def remember(self, principal: Principal) -> None:
        if principal.api_key_hash is None:
            raise ValueError("only a principal of an API key is remembered here")
        self._principals.pop(principal.api_key_hash, None)
        if len(self._principals) >= self._remembered:
            # Dicts keep insertion order: forget the oldest.
            del self._principals[next(iter(self._principals))]
        self._principals[principal.api_key_hash] = (principal, time.monotonic() + self._seconds)


@dataclass(frozen=True, slots=True)
class Resources:
    """Everything a request may use, handed to it through the lifespan state."""

    settings: Settings
    db: Database
    redis: Redis | RedisCluster
    metrics: Metrics
    schema: ExpectedSchema
    passwords: PasswordHasher
    tokens: AccessTokens
    cursors: CursorCodec
    limiter: RateLimiter
    tracer: Tracer | None  # None: tracing is off
    api_keys: RememberedApiKeys
