"""The service through a real PgBouncer in transaction pooling mode.

PgBouncer 1.18 (Debian 12's) hands a server connection to a client for one
transaction only and cannot follow prepared statements (``max_prepared_statements``
came in 1.21): the service runs behind it with ``ITINERA_DB_STATEMENT_CACHE_SIZE=0``,
its migrations and sweeps on a direct owner connection. Twenty client
connections share two server connections here, so consecutive transactions of
one client, and the transactions of two tenants, meet on the same servers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.db.bootstrap import APP_ROLE
from itinera.db.models import Itinerary
from itinera.db.pool import Connect, driver_connect
from itinera.settings import Settings
from tests.support.app import running_app
from tests.support.database import TEST_EMBEDDING_DIM, ScratchDatabase
from tests.support.http import assert_problem, with_key
from tests.support.pgbouncer import PgBouncer, pgbouncer
from tests.support.servers import PostgresServer
from tests.support.tenants import Account, Tenant

pytestmark = pytest.mark.slow

CLIENTS = 20
SERVER_CONNECTIONS = 2
# The startup parameters PgBouncer sets on a server connection for the client it serves.
POOLER_SET = {"application_name", "client_encoding", "DateStyle", "TimeZone"}
TRIP = {"title": "Pooled week", "start_date": "2027-06-01", "end_date": "2027-06-08"}


@pytest.fixture(scope="module")
def bouncer(postgres: PostgresServer) -> Iterator[PgBouncer]:
    with pgbouncer(postgres, pool_size=SERVER_CONNECTIONS, max_client_conn=100) as server:
        yield server


@pytest.fixture(scope="module")
def pooled_url(bouncer: PgBouncer, database: ScratchDatabase) -> str:
    """The service role through PgBouncer; the owner (migrations, sweeps) stays direct."""
    return bouncer.role_url(APP_ROLE, database.name)


@pytest.fixture(scope="module")
def pooled_settings(settings: Settings, pooled_url: str) -> Settings:
    return settings.replace(
        database_url=pooled_url,
        db_statement_cache_size=0,
        # One client connection per concurrent request, twenty of them.
        db_pool_size=CLIENTS,
        db_max_overflow=0,
    )


@pytest.fixture(scope="module")
async def pooled_client(pooled_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(pooled_settings) as client:
        yield client


def app_pool(bouncer: PgBouncer, database: ScratchDatabase) -> dict[str, int]:
    """PgBouncer's own count of the service role's clients and server connections."""
    (row,) = [
        row
        for row in bouncer.show("POOLS")
        if row["database"] == database.name and row["user"] == APP_ROLE
    ]
    servers = ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")
    return {
        "clients": int(row["cl_active"]) + int(row["cl_waiting"]),
        "servers": sum(int(row[name]) for name in servers),
    }


def axis(i: int) -> list[float]:
    return [1.0 if n == i % TEST_EMBEDDING_DIM else 0.0 for n in range(TEST_EMBEDDING_DIM)]


async def tenant_session(
    client: httpx.AsyncClient, account: Account, word: str, foreign_word: str, n: int
) -> dict[str, Any]:
    """One client's requests: write, list, search; what it saw, for the checks after."""
    created = await client.post(
        "/v1/itineraries", json={**TRIP, "title": f"{word} {n}"}, headers=with_key(account)
    )
    assert created.status_code == 201, created.text
    item = await client.post(
        "/v1/knowledge",
        json={
            "source": f"guides/{word}-{n}.md",
            "title": f"{word} {n}",
            "body": f"{word} notes {n}",
            "chunks": [{"text": f"{word} reef {n}", "vector": axis(n)}],
        },
        headers=account.headers,
    )
    assert item.status_code == 201, item.text
    listed = await client.get("/v1/itineraries?limit=100", headers=account.headers)
    assert listed.status_code == 200, listed.text
    by_word = await client.post(
        "/v1/knowledge/search", json={"query_text": word, "k": 50}, headers=account.headers
    )
    by_foreign_word = await client.post(
        "/v1/knowledge/search", json={"query_text": foreign_word, "k": 50}, headers=account.headers
    )
    by_vector = await client.post(
        "/v1/knowledge/search", json={"query_vector": axis(n), "k": 50}, headers=account.headers
    )
    for search in (by_word, by_foreign_word, by_vector):
        assert search.status_code == 200, search.text
    return {
        "itinerary": created.json()["id"],
        "item": item.json()["id"],
        "listed": {row["id"] for row in listed.json()["items"]},
        "found_by_word": {row["item_id"] for row in by_word.json()["results"]},
        "found_by_foreign_word": by_foreign_word.json()["results"],
        "found_by_vector": {row["item_id"] for row in by_vector.json()["results"]},
    }


async def test_two_tenants_interleaved_on_two_server_connections_see_only_their_own_rows(
    pooled_client: httpx.AsyncClient,
    bouncer: PgBouncer,
    database: ScratchDatabase,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    words = {tenant.org_id: "grouper", other_tenant.org_id: "barracuda"}
    accounts = [tenant.member, other_tenant.member] * CLIENTS
    sessions = await asyncio.gather(
        *(
            tenant_session(
                pooled_client,
                account,
                words[account.org_id],
                next(w for org, w in words.items() if org != account.org_id),
                n,
            )
            for n, account in enumerate(accounts)
        ),
        # Readiness runs SQLAlchemy's own statements on the same pool meanwhile.
        *(pooled_client.get("/ready") for _ in range(4)),
    )
    seen = [s for s in sessions if isinstance(s, dict)]
    readiness = [r for r in sessions if isinstance(r, httpx.Response)]
    assert [r.status_code for r in readiness] == [200] * 4
    mine = {
        org: [s for s, a in zip(seen, accounts, strict=True) if a.org_id == org] for org in words
    }
    for own in mine.values():
        itineraries = {s["itinerary"] for s in own}
        items = {s["item"] for s in own}
        assert len(itineraries) == len(items) == CLIENTS
        for session in own:
            assert session["itinerary"] in session["listed"] <= itineraries
            assert session["item"] in session["found_by_word"] <= items
            assert session["found_by_vector"] <= items
            assert session["found_by_foreign_word"] == []

    # Each tenant asks for every row of the other, interleaved: all unknown to it.
    crossed = await asyncio.gather(
        *(
            pooled_client.get(f"/v1/itineraries/{theirs['itinerary']}", headers=account.headers)
            for account, other in ((tenant.member, other_tenant), (other_tenant.member, tenant))
            for theirs in mine[other.org_id]
        )
    )
    for answer in crossed:
        assert_problem(answer, 404)

    # All of it went through two server connections shared by twenty clients.
    pool = app_pool(bouncer, database)
    assert pool["servers"] <= SERVER_CONNECTIONS
    assert pool["clients"] > SERVER_CONNECTIONS


async def test_concurrent_posts_with_one_key_make_one_resource_through_the_pooler(
    pooled_client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    headers = {**tenant.member.headers, "Idempotency-Key": f"pooled-{uuid.uuid4()}"}
    answers = await asyncio.gather(
        *(pooled_client.post("/v1/itineraries", json=TRIP, headers=headers) for _ in range(30))
    )
    created = [a for a in answers if a.status_code == 201]
    in_flight = [a for a in answers if a.status_code != 201]
    assert created
    assert len({a.content for a in created}) == 1
    for answer in in_flight:
        assert_problem(answer, 409, "/problems/idempotency-in-flight")
    async with owner_engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(Itinerary).where(Itinerary.org_id == tenant.org_id)
        )
    assert count == 1


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_concurrent_writers_of_one_version_through_the_pooler_cannot_both_win(
    pooled_client: httpx.AsyncClient, tenant: Tenant, method: str
) -> None:
    created = await pooled_client.post(
        "/v1/itineraries", json=TRIP, headers=with_key(tenant.member)
    )
    url = created.headers["location"]
    headers = {**tenant.member.headers, "If-Match": '"1"'}
    answers = await asyncio.gather(
        *(
            pooled_client.request(
                method, url, json={**TRIP, "title": f"writer {n}"}, headers=headers
            )
            for n in range(CLIENTS)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] + [412] * (CLIENTS - 1)
    winner = next(a for a in answers if a.status_code == 200).json()
    final = (await pooled_client.get(url, headers=tenant.member.headers)).json()
    assert (final["version"], final["title"]) == (2, winner["title"])


async def test_server_connections_keep_nothing_of_a_request(
    pooled_client: httpx.AsyncClient,
    pooled_url: str,
    superuser: asyncpg.Connection,
    database: ScratchDatabase,
    tenant: Tenant,
) -> None:
    # Requests that set the tenant, a statement timeout, search's HNSW knobs and
    # an idempotency key's advisory lock, all transaction-local.
    await asyncio.gather(
        *(
            pooled_client.post("/v1/itineraries", json=TRIP, headers=with_key(tenant.member))
            for _ in range(CLIENTS)
        ),
        *(
            pooled_client.post(
                "/v1/knowledge/search",
                json={"query_vector": axis(1)},
                headers=tenant.member.headers,
            )
            for _ in range(CLIENTS)
        ),
    )
    # Two transactions at once hold both server connections: look inside each.
    dsn = pooled_url.replace("postgresql+asyncpg", "postgresql")
    watchers = [await asyncpg.connect(dsn, statement_cache_size=0) for _ in range(2)]
    try:
        for watcher in watchers:
            await watcher.execute("BEGIN")
        seen = [
            await watcher.fetchrow(
                """
                SELECT pg_backend_pid() AS pid,
                       coalesce(current_setting('itinera.org_id', true), '') AS org,
                       current_setting('statement_timeout') AS statement_timeout,
                       coalesce(current_setting('hnsw.ef_search', true), '40') AS ef_search,
                       (SELECT count(*) FROM pg_prepared_statements) AS prepared_statements,
                       (SELECT array_agg(name ORDER BY name) FROM pg_settings
                         WHERE source = 'session' AND setting IS DISTINCT FROM reset_val
                       ) AS changed_settings
                """
            )
            for watcher in watchers
        ]
    finally:
        for watcher in watchers:
            await watcher.close()
    assert len({row["pid"] for row in seen}) == 2
    for row in seen:
        assert (row["org"], row["statement_timeout"], row["ef_search"]) == ("", "0", "40")
        assert row["prepared_statements"] == 0
        # Nothing differs from the connection's start but what PgBouncer itself
        # sets for each client it serves. (asyncpg's type introspection turns
        # jit off and on again with session-level set_config: inside the unit
        # of work's transaction, so the value is back before the server is.)
        assert set(row["changed_settings"] or ()) <= POOLER_SET
    advisory = await superuser.fetchval(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
        " WHERE l.locktype = 'advisory' AND d.datname = $1",
        database.name,
    )
    assert advisory == 0


async def run_a_statement_on_the_other_server_connection(connect: Connect) -> tuple[int, int]:
    """Run one statement in a transaction, then again in a transaction that PgBouncer
    is made to give another server connection; the two backends' pids."""
    statement = "SELECT pg_backend_pid()"
    first, second, third = await connect(), await connect(), await connect()
    try:
        await first.execute("BEGIN")
        before = int(await first.fetchval(statement))
        await first.execute("COMMIT")
        # Two transactions hold both server connections; the one not on `before`'s
        # ends, so the only idle server connection is the other one.
        await second.execute("BEGIN")
        await third.execute("BEGIN")
        second_pid = await second.fetchval("SELECT pg_backend_pid() AS holder")
        holder, leaver = (second, third) if second_pid == before else (third, second)
        await leaver.execute("COMMIT")
        try:
            await first.execute("BEGIN")
            after = int(await first.fetchval(statement))
        finally:
            await first.execute("ROLLBACK")
            await holder.execute("COMMIT")
    finally:
        for connection in (first, second, third):
            await connection.close()
    return before, after


async def test_without_a_statement_cache_a_statement_moves_between_server_connections(
    pooled_url: str, settings: Settings
) -> None:
    connect = driver_connect(
        pooled_url,
        settings.replace(db_statement_cache_size=0),
        application_name="pgbouncer-tests",
    )
    before, after = await run_a_statement_on_the_other_server_connection(connect)
    assert before != after


async def test_the_default_statement_cache_breaks_behind_pgbouncer_in_transaction_mode(
    pooled_url: str, settings: Settings
) -> None:
    # Why the setting exists: the cached statement was prepared on the first
    # server connection and PgBouncer 1.18 does not carry it to the second.
    assert settings.db_statement_cache_size == 100
    connect = driver_connect(pooled_url, settings, application_name="pgbouncer-tests")
    with pytest.raises(asyncpg.InvalidSQLStatementNameError, match="does not exist"):
        await run_a_statement_on_the_other_server_connection(connect)
