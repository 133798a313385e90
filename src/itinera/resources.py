"""What a request may use: built by the lifespan, found in every request's scope."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis, RedisCluster

from itinera.db.engine import Database
from itinera.db.schema import ExpectedSchema
from itinera.metrics import Metrics
from itinera.pagination import CursorCodec
from itinera.ratelimit import RateLimiter
from itinera.security.passwords import PasswordHasher
from itinera.security.tokens import AccessTokens
from itinera.settings import Settings
from itinera.tracing import Tracer


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
