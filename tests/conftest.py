from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.db.bootstrap import APP_ROLE, OWNER_ROLE, bootstrap_database
from itinera.db.engine import create_engine
from itinera.embedded import EmbeddedPostgres
from itinera.settings import Settings
from tests.support.app import running_app
from tests.support.database import (
    ScratchDatabase,
    create_database,
    dispose_database,
    run_alembic,
)
from tests.support.servers import (
    FAST_AND_LOOSE,
    PostgresServer,
    RedisProcess,
    redis_server_process,
    session_servers,
)
from tests.support.tenants import Tenant, make_tenant

# `live_service` and friends: a live `itinera serve` for the client and its adapters.
pytest_plugins = ["tests.support.live_service"]


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[PostgresServer, str]]:
    with session_servers() as pair:
        yield pair


@pytest.fixture(scope="session")
def postgres(servers: tuple[PostgresServer, str]) -> PostgresServer:
    return servers[0]


@pytest.fixture(scope="session")
def redis_url(servers: tuple[PostgresServer, str]) -> str:
    return servers[1]


@pytest.fixture(scope="session")
async def database(postgres: PostgresServer) -> AsyncIterator[ScratchDatabase]:
    if postgres.kind == "embedded":
        await _loosen_durability(postgres)
    database = await create_database(postgres)
    yield database
    await dispose_database(postgres, database)


async def _loosen_durability(postgres: PostgresServer) -> None:
    conn = await asyncpg.connect(postgres.superuser_dsn)
    try:
        for name, value in FAST_AND_LOOSE.items():
            await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


@pytest.fixture
async def superuser(
    postgres: PostgresServer, database: ScratchDatabase
) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the suite's database (to watch and kill backends)."""
    conn = await asyncpg.connect(postgres.dsn(database.name))
    yield conn
    await conn.close()


@pytest.fixture(scope="session")
def settings(database: ScratchDatabase, redis_url: str) -> Settings:
    """The suite's settings: rate limits out of the way unless a test sets its own."""
    return database.settings(
        redis_url=redis_url,
        rate_limit_agent_per_minute=100_000,
        rate_limit_crud_per_minute=100_000,
        rate_limit_auth_per_minute=100_000,
        rate_limit_auth_ip_per_minute=100_000,
        rate_limit_state_per_minute=100_000,
    )


@pytest.fixture(scope="session")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings) as client:
        yield client


@pytest.fixture(scope="session")
async def owner_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    assert settings.admin_database_url is not None
    engine = create_engine(settings.admin_database_url, settings, application_name="itinera-tests")
    yield engine
    await engine.dispose()


@pytest.fixture
async def tenant(owner_engine: AsyncEngine, settings: Settings) -> Tenant:
    """A fresh org with an admin and a member: tests isolate through tenancy."""
    return await make_tenant(owner_engine, settings)


@pytest.fixture
async def other_tenant(owner_engine: AsyncEngine, settings: Settings) -> Tenant:
    return await make_tenant(owner_engine, settings)


@pytest.fixture
async def superuser_of(postgres: PostgresServer) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the server's maintenance database."""
    conn = await asyncpg.connect(postgres.superuser_dsn)
    yield conn
    await conn.close()


@pytest.fixture
async def own_postgres() -> AsyncIterator[tuple[EmbeddedPostgres, ScratchDatabase]]:
    """A private embedded server with the schema, so stopping it disturbs no other test."""
    embedded = EmbeddedPostgres(
        Path(tempfile.mkdtemp(prefix="itinera-own-")) / "pgdata", cleanup="delete"
    )
    await anyio.to_thread.run_sync(embedded.start)
    try:
        await bootstrap_database(embedded.superuser_dsn(), "itinera")
        database = ScratchDatabase("itinera", embedded.url(APP_ROLE), embedded.url(OWNER_ROLE))
        await run_alembic(database.settings(), "upgrade", "head")
        yield embedded, database
    finally:
        await anyio.to_thread.run_sync(embedded.close)


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A private Redis that a test may stop and start again."""
    with redis_server_process() as server:
        yield server
