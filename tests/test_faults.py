"""Failing parts under load: the service answers fast, says why, and recovers by itself."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from itinera.db.models import Itinerary
from itinera.embedded import EmbeddedPostgres
from itinera.settings import Settings
from tests.support.app import running_app
from tests.support.database import ScratchDatabase
from tests.support.http import assert_problem, with_key
from tests.support.servers import RedisProcess, start_embedded_postgres, stop_embedded_postgres
from tests.support.tenants import Tenant, make_tenant

pytestmark = pytest.mark.slow

TRIP = {"title": "Faults", "start_date": "2027-01-01", "end_date": "2027-01-02"}


async def test_an_exhausted_pool_answers_503_after_a_bounded_wait(
    settings: Settings, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    one_connection = settings.replace(
        db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=0.5
    )
    async with running_app(one_connection) as client:
        created = await client.post("/v1/itineraries", json=TRIP, headers=with_key(tenant.member))
        itinerary_id = uuid.UUID(created.json()["id"])
        async with owner_engine.connect() as blocker:
            await blocker.begin()
            await blocker.execute(
                select(Itinerary.id).where(Itinerary.id == itinerary_id).with_for_update()
            )
            # This request takes the only connection and waits on the row lock.
            stuck = asyncio.create_task(
                client.put(
                    created.headers["location"],
                    json=TRIP,
                    headers={**tenant.member.headers, "If-Match": '"1"'},
                )
            )
            await asyncio.sleep(0.3)
            started = time.monotonic()
            waiting = await client.get("/v1/me", headers=tenant.member.headers)
            waited = time.monotonic() - started
            await blocker.rollback()
        assert (await stuck).status_code == 200
        assert_problem(waiting, 503)
        assert waiting.headers["retry-after"] == "1"
        assert waited < 5, "the wait is bounded by the pool timeout, not unbounded"
        assert (await client.get("/v1/me", headers=tenant.member.headers)).status_code == 200


async def test_postgres_restarted_under_load(
    own_postgres: tuple[EmbeddedPostgres, ScratchDatabase], redis_url: str
) -> None:
    embedded, database = own_postgres
    socket_dir = embedded.socket_dir
    settings = database.settings(redis_url=redis_url, rate_limit_crud_per_minute=100_000)
    owner = create_async_engine(database.owner_url)
    try:
        tenant = await make_tenant(owner, settings)
    finally:
        await owner.dispose()

    async with running_app(settings) as client:

        async def load(seconds: float) -> list[tuple[int, float]]:
            answers = []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                started = time.monotonic()
                response = await client.get("/v1/me", headers=tenant.member.headers)
                answers.append((response.status_code, time.monotonic() - started))
                if response.status_code != 200:
                    assert_problem(response, 503)
            return answers

        before = await load(0.3)
        stop_embedded_postgres(embedded)
        during = await load(1.0)
        start_embedded_postgres(embedded, socket_dir)
        after = await load(0.5)

    assert {status for status, _ in before} == {200}
    assert {status for status, _ in during} == {503}
    assert max(seconds for _, seconds in during) < 2, "fails fast while the database is down"
    assert len(during) > 5
    assert after[-1][0] == 200, "recovers without restarting the service"
    assert sum(status == 200 for status, _ in after) >= len(after) - 2


async def test_redis_stopped_under_load_fails_open(
    settings: Settings, tenant: Tenant, own_redis: RedisProcess
) -> None:
    async with running_app(settings.replace(redis_url=own_redis.url)) as client:

        async def burst() -> list[int]:
            answers = await asyncio.gather(
                *(client.get("/v1/me", headers=tenant.member.headers) for _ in range(20))
            )
            return [a.status_code for a in answers]

        first = asyncio.create_task(burst())
        await asyncio.sleep(0)
        own_redis.stop()
        assert set(await first) == {200}
        assert set(await burst()) == {200}
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["redis"]["status"] == "degraded"
        own_redis.start()
