"""The lifespan owns every resource: engines, Redis, the password hasher, background tasks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from itinera.db.engine import Database
from itinera.db.schema import ExpectedSchema, SchemaStatus, compare, expected_schema, observe_schema
from itinera.metrics import Metrics, QueuePoolUsage
from itinera.pagination import CursorCodec
from itinera.ratelimit import RateLimiter
from itinera.resources import RememberedApiKeys, Resources
from itinera.retention.policies import policies
from itinera.retention.sweeper import run_sweeper
from itinera.security.passwords import PasswordHasher
from itinera.security.tokens import AccessTokens
from itinera.settings import Settings
from itinera.tracing import Tracer, open_tracer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

log = logging.getLogger(__name__)


class ClosingRedisCluster(RedisCluster):
    """redis-py's cluster client, whose ``aclose`` closes every connection.

    ``RedisCluster.aclose`` does nothing while the client waits to re-read the
    slot map, which it does after any node failed a command: a service that
    saw a primary fail would leave every connection open at shutdown.
    """

    async def aclose(self) -> None:
        await super().aclose()
        await self.nodes_manager.aclose()
        await self.nodes_manager.aclose("startup_nodes")


def open_redis(settings: Settings) -> Redis | RedisCluster:
    if settings.redis_url is None:
        raise RuntimeError("the Redis URL is resolved before Redis is opened")
    # No retries: a slow or absent Redis must cost one short timeout, not several.
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout_seconds,
        "socket_connect_timeout": settings.redis_timeout_seconds,
        "retry": Retry(NoBackoff(), 0),
    }
    if not settings.redis_cluster:
        return Redis.from_url(settings.redis_url, **options)
    if not settings.redis_url.startswith(("redis://", "rediss://")):
        raise RuntimeError(
            "ITINERA_REDIS_CLUSTER=true needs REDIS_URL to name a cluster node "
            "(redis:// or rediss://)"
        )
    # REDIS_URL names one node; the client reads the slot map from it on first
    # use and then talks to the node owning each key. Past max_connections per
    # node the client refuses at once instead of waiting (its default, 100, is
    # one burst of concurrent requests, which the limiter would then let
    # through): no cap, like the single-node client's pool.
    return ClosingRedisCluster.from_url(settings.redis_url, max_connections=2**31, **options)


async def refuse_wrong_dimension(db: Database, schema: ExpectedSchema) -> None:
    """A configured embedding dimension that differs from the database's is fatal."""
    try:
        async with db.probe_engine.connect() as conn:
            status = compare(schema, await observe_schema(conn))
    except Exception as exc:  # an unreachable database is readiness's business
        log.warning("could not inspect the schema at startup: %s", type(exc).__name__)
        return
    if status is SchemaStatus.WRONG_DIMENSION:
        raise RuntimeError(
            f"ITINERA_EMBEDDING_DIM={schema.embedding_dim} differs from the database's "
            "embedding column; the dimension is fixed when the schema is created"
        )


async def start_sweepers(
    background: TaskGroup, db: Database, settings: Settings, metrics: Metrics
) -> None:
    """One sweeper per retention policy, on the owner role, across all tenants."""
    for policy in policies(settings):
        await background.start(
            partial(
                run_sweeper,
                db.owner_sessions,
                policy,
                interval_seconds=settings.sweep_interval_seconds,
                batch_size=settings.sweep_batch_size,
                metrics=metrics,
            )
        )


def make_lifespan(
    settings: Settings, metrics: Metrics, span_processor: SpanProcessor | None = None
) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """``span_processor``: where spans go besides the configured exporters (see ``open_tracer``)."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        if settings.jwt_secret is None:
            raise RuntimeError("the JWT secret is resolved before the app starts")
        secret = settings.jwt_secret
        schema = expected_schema(settings)
        db = Database.open(settings)
        metrics.track_pools({"app": db.requests, "owner": QueuePoolUsage(db.owner_engine.pool)})
        redis = open_redis(settings)
        limiter = RateLimiter(redis, settings)
        tracer: Tracer | None = None
        try:
            tracer = open_tracer(settings, span_processor)
            await refuse_wrong_dimension(db, schema)
            resources = Resources(
                settings=settings,
                db=db,
                redis=redis,
                metrics=metrics,
                schema=schema,
                passwords=PasswordHasher(),
                tokens=AccessTokens(
                    secret, issuer=settings.jwt_issuer, audience=settings.jwt_audience
                ),
                cursors=CursorCodec(secret),
                limiter=limiter,
                tracer=tracer,
                api_keys=RememberedApiKeys(),
            )
            async with anyio.create_task_group() as background:
                if settings.sweepers_enabled:
                    await start_sweepers(background, db, settings, metrics)
                yield {"resources": resources}
                # Stopping mid-batch is safe: a batch is one transaction.
                background.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await limiter.aclose()
                await redis.aclose()
                await db.dispose()
                if tracer is not None:
                    # Exports the spans still queued: network I/O, off the event loop.
                    await anyio.to_thread.run_sync(tracer.shutdown)

    return lifespan
