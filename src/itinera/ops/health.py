"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio

import msgspec
from anyio import fail_after
from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterNode
from sqlalchemy.exc import DBAPIError
from starlette.responses import Response

from itinera.db.schema import ObservedSchema, SchemaStatus, compare, observe_schema
from itinera.http import JSONResponse
from itinera.resources import Resources
from itinera.routing import Api, Context

api = Api(tag="operations")

OK = "ok"
DEGRADED = "degraded"
UNAVAILABLE = "unavailable"


class Health(msgspec.Struct):
    status: str


class DependencyCheck(msgspec.Struct, omit_defaults=True):
    status: str
    detail: str | None = None
    revision: str | None = None
    expected: str | None = None


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, DependencyCheck]


@api.get(
    "/health",
    summary="Liveness: answers without touching any dependency",
    response=Health,
    public=True,
    bucket=None,
    uses_database=False,
)
async def health(ctx: Context) -> Response:
    return JSONResponse(Health(status=OK))


@api.get(
    "/ready",
    summary="Readiness of PostgreSQL, Redis and the schema",
    response=Readiness,
    public=True,
    bucket=None,
    uses_database=False,
    statuses=(503,),
)
async def ready(ctx: Context) -> Response:
    resources: Resources = ctx.resources
    postgres, schema = await _check_postgres(resources)
    redis = await _check_redis(resources)
    fatal = postgres.status != OK or schema.status != OK or redis.status == UNAVAILABLE
    overall = UNAVAILABLE if fatal else (DEGRADED if redis.status == DEGRADED else OK)
    body = Readiness(
        status=overall, checks={"postgres": postgres, "redis": redis, "schema": schema}
    )
    return JSONResponse(body, status_code=503 if fatal else 200)


async def _observe(resources: Resources) -> ObservedSchema:
    with fail_after(resources.settings.readiness_timeout_seconds):
        async with resources.db.probe_engine.connect() as conn:
            return await observe_schema(conn)


async def _check_postgres(resources: Resources) -> tuple[DependencyCheck, DependencyCheck]:
    expected = resources.schema
    try:
        try:
            observed = await _observe(resources)
        except DBAPIError as exc:
            # A pooled connection from before a database restart fails once
            # (and takes its pool with it): ask again on a fresh one.
            if not exc.connection_invalidated:
                raise
            observed = await _observe(resources)
    except Exception as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        return (
            DependencyCheck(status=UNAVAILABLE, detail=reason),
            DependencyCheck(status="unknown", expected=expected.head),
        )
    status = compare(expected, observed)
    schema = DependencyCheck(
        status=OK if status.serviceable else UNAVAILABLE,
        detail=None if status is SchemaStatus.OK else status.value,
        revision=observed.revision,
        expected=expected.head,
    )
    return DependencyCheck(status=OK), schema


async def _check_redis(resources: Resources) -> DependencyCheck:
    down = DEGRADED if resources.settings.rate_limit_fail_open else UNAVAILABLE
    redis = resources.redis
    try:
        with fail_after(resources.settings.readiness_timeout_seconds):
            if isinstance(redis, RedisCluster):
                return await _check_redis_cluster(redis, down)
            await redis.ping()
    except Exception as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        return DependencyCheck(status=down, detail=reason)
    return DependencyCheck(status=OK)


async def _check_redis_cluster(cluster: RedisCluster, down: str) -> DependencyCheck:
    """Asks every primary for its view of the cluster, all at once.

    A primary holds its users' buckets alone: one that is gone (or refuses
    commands) costs its users their limits and no one else theirs, so only
    all of them gone counts as Redis down. CLUSTER INFO of one node is not
    enough: the others still say ``cluster_state:ok`` about a failed primary
    when the cluster does not require full coverage.
    """
    await cluster.initialize()  # the slot map, from any node that answers
    primaries = cluster.get_primaries()

    async def failure(node: ClusterNode) -> str | None:
        try:
            info = await cluster.cluster_info(target_nodes=node)
        except Exception as exc:  # one primary's failure is reported, not raised
            return "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        state = info.get("cluster_state")
        return None if state == "ok" else f"cluster_state {state}"

    failures = [f for f in await asyncio.gather(*map(failure, primaries)) if f is not None]
    if not failures:
        return DependencyCheck(status=OK)
    return DependencyCheck(
        status=down if len(failures) == len(primaries) else DEGRADED,
        detail=f"{len(failures)} of {len(primaries)} primaries not serving: "
        + ", ".join(sorted(set(failures))),
    )


@api.get(
    "/metrics",
    summary="Prometheus metrics",
    public=True,
    bucket=None,
    uses_database=False,
)
async def metrics(ctx: Context) -> Response:
    resources: Resources = ctx.resources
    return Response(
        resources.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
