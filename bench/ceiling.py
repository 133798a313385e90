"""The ceiling: bare Starlette + asyncpg doing the service's insert and select, nothing else.

No auth, no rate limit, no tenant setting, no idempotency, no unit of work:
one pooled connection per request and one statement (autocommit). It connects
as the owner role, whose allow-all policy passes Row-Level Security.

    python -m bench.ceiling --port 8001 --dsn postgresql://itinera_owner@/itinera?host=...
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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

    async def create(request: Request) -> Response:
        body = _decode_in(await request.body())
        assert pool is not None
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

    async def read(request: Request) -> Response:
        assert pool is not None
        row = await pool.fetchrow(SELECT, org_id, request.path_params["id"])
        if row is None:
            return _json({"detail": "not found"}, 404)
        return _json(Itinerary(**dict(row)))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(
            dsn, min_size=pool_size, max_size=pool_size, init=_init_connection
        )
        try:
            yield
        finally:
            await pool.close()

    return Starlette(
        routes=[
            Route("/itineraries", create, methods=["POST"]),
            Route("/itineraries/{id:uuid}", read, methods=["GET"]),
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
