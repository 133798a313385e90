"""Readiness against dependencies that are really stopped and started again."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text

from itinera.db.engine import create_engine
from itinera.embedded import EmbeddedPostgres
from tests.support.app import running_app
from tests.support.database import ScratchDatabase, create_database, dispose_database
from tests.support.servers import (
    PostgresServer,
    RedisProcess,
    start_embedded_postgres,
    stop_embedded_postgres,
)

pytestmark = pytest.mark.slow


async def test_ready_follows_dependencies_going_down_and_coming_back(
    own_postgres: tuple[EmbeddedPostgres, ScratchDatabase], own_redis: RedisProcess
) -> None:
    embedded, database = own_postgres
    socket_dir = embedded.socket_dir
    fail_open = database.settings(redis_url=own_redis.url, rate_limit_fail_open=True)
    fail_closed = fail_open.replace(rate_limit_fail_open=False)
    async with running_app(fail_open) as client, running_app(fail_closed) as strict_client:
        assert (await client.get("/ready")).status_code == 200

        own_redis.stop()
        degraded = await client.get("/ready")
        assert degraded.status_code == 200
        assert degraded.json()["status"] == "degraded"
        assert degraded.json()["checks"]["redis"]["status"] == "degraded"
        refused = await strict_client.get("/ready")
        assert refused.status_code == 503
        assert refused.json()["checks"]["redis"]["status"] == "unavailable"

        own_redis.start()
        stop_embedded_postgres(embedded)
        down = await client.get("/ready")
        assert down.status_code == 503
        assert down.json()["checks"]["postgres"]["status"] == "unavailable"
        assert down.json()["checks"]["redis"]["status"] == "ok"
        # Liveness never looks at dependencies.
        assert (await client.get("/health")).status_code == 200

        start_embedded_postgres(embedded, socket_dir)
        back = await client.get("/ready")
        assert back.status_code == 200, back.json()
        assert back.json()["status"] == "ok"
        assert (await strict_client.get("/ready")).status_code == 200


async def _ready(database: ScratchDatabase, redis_url: str) -> httpx.Response:
    async with running_app(database.settings(redis_url=redis_url)) as client:
        return await client.get("/ready")


async def test_ready_refuses_a_database_without_the_schema(
    postgres: PostgresServer, redis_url: str
) -> None:
    database = await create_database(postgres, migrate_to=None)
    try:
        response = await _ready(database, redis_url)
    finally:
        await dispose_database(postgres, database)
    assert response.status_code == 503
    assert response.json()["checks"]["schema"]["status"] == "unavailable"
    assert response.json()["checks"]["schema"]["detail"] == "missing"


async def test_ready_accepts_a_schema_newer_than_this_build(
    postgres: PostgresServer, redis_url: str
) -> None:
    database = await create_database(postgres)
    engine = create_engine(database.owner_url, database.settings(), application_name="tests")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
        response = await _ready(database, redis_url)
    finally:
        await engine.dispose()
        await dispose_database(postgres, database)
    assert response.status_code == 200
    assert response.json()["checks"]["schema"]["detail"] == "ahead"


async def test_serve_refuses_a_different_embedding_dimension(
    database: ScratchDatabase, redis_url: str
) -> None:
    settings = database.settings(redis_url=redis_url, embedding_dim=32)
    with pytest.raises(RuntimeError, match="ITINERA_EMBEDDING_DIM=32"):
        async with running_app(settings):
            pass
