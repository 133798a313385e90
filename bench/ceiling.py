"""The ceiling: bare Starlette + asyncpg doing the service's insert and select, nothing else.

No auth, no rate limit, no tenant setting, no idempotency, no unit of work:
one pooled connection per request and one statement (autocommit). It connects
as the owner role, whose allow-all policy passes Row-Level Security.

It counts its requests and their round trips to PostgreSQL as the service does,
and shows them at ``GET /metrics`` (``ceiling_http_requests_total`` and
``ceiling_db_round_trips_total``, by method and route template): the statement,
and the pool's reset query when the connection goes back (asyncpg's default
reset, run here by a function that counts it). It has no Redis client, so it
declares no Redis counter.

    python -m bench.ceiling --port 8001 --dsn postgresql://itinera_owner@/itinera?host=...
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
import msgspec
import uuid_utils.compat
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

COLUMNS = (
    "id, created_by, agent_run_id, destination_id, title, start_date, end_date, status, data,"
    " version, created_at, updated_at"
)
INSERT = (
    "INSERT INTO itinerary (org_id, id, created_by, title, start_date, end_date, status, data)"
    f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
)
SELECT = f"SELECT {COLUMNS} FROM itinerary WHERE org_id = $1 AND id = $2"


class ItineraryIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    title: str
    start_date: date
    end_date: date
    status: str = "draft"
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class Itinerary(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    created_by: uuid.UUID
    agent_run_id: uuid.UUID | None
    destination_id: uuid.UUID | None
    title: str
    start_date: date
    end_date: date
    status: str
    data: dict[str, object]
    version: int
    created_at: datetime
    updated_at: datetime


_decode_in = msgspec.json.Decoder(ItineraryIn).decode
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class Counts:
    requests: int = 0
    database: int = 0


# The round trips of the request the current task serves (None: none is being served).
_REQUEST: ContextVar[Counts | None] = ContextVar("ceiling_request", default=None)
CREATE_ROUTE = ("POST", "/itineraries")
READ_ROUTE = ("GET", "/itineraries/{id}")


def _database_round_trip() -> None:
    counted = _REQUEST.get()
    if counted is not None:
        counted.database += 1


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """What asyncpg's pool does by default when a connection goes back (the pool has
    already done the local part: ``Connection.reset()`` = that + this query), counted."""
    query = conn.get_reset_query()
    if query:
        _database_round_trip()
        await conn.execute(query)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _exposition(counts: dict[tuple[str, str], Counts]) -> str:
    """The counters in Prometheus' text format, as the service's /metrics has them."""
    lines = []
    for name, field in (("http_requests", "requests"), ("db_round_trips", "database")):
        metric = f"ceiling_{name}_total"
        lines.append(f"# TYPE {metric} counter")
        for (method, route), counted in counts.items():
            value = getattr(counted, field)
            lines.append(f'{metric}{{method="{method}",route="{_label(route)}"}} {value}')
    return "\n".join(lines) + "\n"


def _json(value: object, status: int = 200) -> Response:
    return Response(_encode(value), status_code=status, media_type="application/json")


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out through msgspec, as the service's engine does.
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: _encode(value).decode(),
        decoder=msgspec.json.decode,
        format="text",
    )


def create_app(dsn: str, org_id: uuid.UUID, user_id: uuid.UUID, pool_size: int) -> Starlette:
    pool: asyncpg.Pool | None = None
    counts = {CREATE_ROUTE: Counts(), READ_ROUTE: Counts()}

    @contextmanager
    def counting(route: tuple[str, str]) -> Iterator[None]:
        """This request's round trips, added to the route's when it ends (as the service)."""
        counted = Counts(requests=1)
        token = _REQUEST.set(counted)
        try:
            yield
        finally:
            _REQUEST.reset(token)
            total = counts[route]
            total.requests += counted.requests
            total.database += counted.database

    async def create(request: Request) -> Response:
        with counting(CREATE_ROUTE):
            return await _create(request)

    async def read(request: Request) -> Response:
        with counting(READ_ROUTE):
            return await _read(request)

    async def metrics(request: Request) -> Response:
        return Response(_exposition(counts), media_type="text/plain; version=0.0.4")

    async def _create(request: Request) -> Response:
        body = _decode_in(await request.body())
        assert pool is not None
        _database_round_trip()
        row = await pool.fetchrow(
            INSERT,
            org_id,
            uuid_utils.compat.uuid7(),
            user_id,
            body.title,
            body.start_date,
            body.end_date,
            body.status,
            body.data,
        )
        return _json(Itinerary(**dict(row)), 201)

    async def _read(request: Request) -> Response:
        assert pool is not None
        _database_round_trip()
        row = await pool.fetchrow(SELECT, org_id, request.path_params["id"])
        if row is None:
            return _json({"detail": "not found"}, 404)
        return _json(Itinerary(**dict(row)))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(
            dsn,
            min_size=pool_size,
            max_size=pool_size,
            init=_init_connection,
            reset=_reset_connection,
        )
        try:
            yield
        finally:
            await pool.close()

    return Starlette(
        routes=[
            Route("/itineraries", create, methods=["POST"]),
            Route("/itineraries/{id:uuid}", read, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True, help="asyncpg DSN of the owner role")
    parser.add_argument("--org-id", type=uuid.UUID, required=True)
    parser.add_argument("--user-id", type=uuid.UUID, required=True)
    parser.add_argument("--pool-size", type=int, default=10)
    args = parser.parse_args()
    app = create_app(args.dsn, args.org_id, args.user_id, args.pool_size)
    # The same uvicorn options as `itinera serve` in embedded mode: one worker,
    # uvloop and httptools when installed (uvicorn[standard]), no access log lines.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
