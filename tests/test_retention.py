"""Retention sweeps, against a database of their own (they delete across all tenants)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import anyio
import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from itinera.db import models as m
from itinera.db.engine import create_engine, session_factory
from itinera.db.models import new_id
from itinera.metrics import Metrics
from itinera.retention.policies import Policy, policies
from itinera.retention.sweeper import run_sweeper, sweep
from itinera.settings import Settings
from tests.support.app import running_app
from tests.support.database import ScratchDatabase, create_database, dispose_database
from tests.support.http import with_key
from tests.support.processes import run_cli
from tests.support.servers import PostgresServer
from tests.support.tenants import Tenant, make_tenant

pytestmark = pytest.mark.slow

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
async def sweep_db(postgres: PostgresServer) -> AsyncIterator[ScratchDatabase]:
    database = await create_database(postgres)
    yield database
    await dispose_database(postgres, database)


@pytest.fixture(scope="module")
def sweep_settings(sweep_db: ScratchDatabase, redis_url: str) -> Settings:
    return sweep_db.settings(
        redis_url=redis_url,
        sweep_batch_size=50,
        rate_limit_crud_per_minute=100_000,
        rate_limit_agent_per_minute=100_000,
    )


@pytest.fixture(scope="module")
async def owner(sweep_settings: Settings) -> AsyncIterator[AsyncEngine]:
    assert sweep_settings.admin_database_url is not None
    # Setting up 200 000 rows on a busy two-core machine may outlast the
    # service's 30 s statement timeout; the tests' own statements may take longer.
    patient = sweep_settings.replace(db_command_timeout_seconds=600.0)
    engine = create_engine(
        patient.admin_database_url or "", patient, application_name="sweep-tests"
    )
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(owner: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(owner)


@pytest.fixture
async def clean(owner: AsyncEngine) -> None:
    """Sweep tests are global: each starts from empty tenant tables."""
    async with owner.begin() as conn:
        await conn.execute(text("TRUNCATE org CASCADE"))


def policy(settings: Settings, name: str) -> Policy:
    return next(p for p in policies(settings) if p.name == name)


async def orgs(owner: AsyncEngine, settings: Settings, n: int = 3) -> list[Tenant]:
    return [await make_tenant(owner, settings) for _ in range(n)]


async def add(conn: Any, model: Any, **values: Any) -> uuid.UUID:
    row_id = values.pop("id", new_id())
    await conn.execute(insert(model).values(id=row_id, **values))
    return row_id


async def ids(owner: AsyncEngine, model: Any) -> set[uuid.UUID]:
    async with owner.connect() as conn:
        return set((await conn.execute(select(model.id))).scalars())


def ago(delta: timedelta) -> Any:
    return func.now() - delta


async def test_agent_runs_go_with_their_children_after_30_days(
    clean: None,
    owner: AsyncEngine,
    sweep_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    stale, fresh = set(), set()
    async with owner.begin() as conn:
        for tenant in await orgs(owner, sweep_settings):
            for age, bucket in ((31 * DAY, stale), (29 * DAY, fresh)):
                run = await add(
                    conn,
                    m.AgentRun,
                    org_id=tenant.org_id,
                    created_by=tenant.admin.user_id,
                    status="succeeded",
                    intent="x",
                    created_at=ago(age),
                    next_seq=3,
                )
                await add(
                    conn,
                    m.AgentToolCall,
                    org_id=tenant.org_id,
                    run_id=run,
                    seq=1,
                    tool="t",
                    input={},
                    output={},
                )
                parent = await add(
                    conn, m.AgentCheckpoint, org_id=tenant.org_id, run_id=run, sequence=1, state={}
                )
                await add(
                    conn,
                    m.AgentCheckpoint,
                    org_id=tenant.org_id,
                    run_id=run,
                    sequence=2,
                    parent_id=parent,
                    state={},
                )
                bucket.add(run)
    report = await sweep(sessions, policy(sweep_settings, "agent_runs"), 2)
    assert report.rows == {"tool calls": 3, "checkpoints": 6, "runs": 3}
    assert await ids(owner, m.AgentRun) == fresh
    async with owner.connect() as conn:
        children = {
            row.run_id
            for model in (m.AgentToolCall, m.AgentCheckpoint)
            for row in await conn.execute(select(model.run_id))
        }
    assert children == fresh


async def test_tool_calls_go_a_day_after_the_run_finished_and_the_run_stays(
    clean: None,
    owner: AsyncEngine,
    sweep_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    kept_calls = set()
    async with owner.begin() as conn:
        for tenant in await orgs(owner, sweep_settings):
            # (finished how long ago, None: still running; stale?)
            for finished, is_stale in (
                (timedelta(hours=25), True),
                (timedelta(hours=1), False),
                (None, False),
            ):
                run = await add(
                    conn,
                    m.AgentRun,
                    org_id=tenant.org_id,
                    created_by=tenant.admin.user_id,
                    status="running" if finished is None else "succeeded",
                    intent="x",
                    finished_at=None if finished is None else ago(finished),
                )
                call = await add(
                    conn,
                    m.AgentToolCall,
                    org_id=tenant.org_id,
                    run_id=run,
                    seq=1,
                    tool="t",
                    input={},
                    output={},
                )
                await add(
                    conn, m.AgentCheckpoint, org_id=tenant.org_id, run_id=run, sequence=2, state={}
                )
                if not is_stale:
                    kept_calls.add(call)
    report = await sweep(sessions, policy(sweep_settings, "tool_calls"), 50)
    assert report.total == 3
    assert await ids(owner, m.AgentToolCall) == kept_calls
    assert len(await ids(owner, m.AgentRun)) == 9
    assert len(await ids(owner, m.AgentCheckpoint)) == 9


async def test_itineraries_drafts_by_update_finals_by_end_date(
    clean: None,
    owner: AsyncEngine,
    sweep_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    today = date.today()
    kept = set()
    cases = [
        # (status, updated ago, end_date, stale?)
        ("draft", 91 * DAY, today + 10 * DAY, True),
        ("draft", 89 * DAY, today - 200 * DAY, False),
        ("final", 400 * DAY, today - 91 * DAY, True),
        ("final", 400 * DAY, today - 89 * DAY, False),
        ("final", 0 * DAY, today + 30 * DAY, False),
    ]
    async with owner.begin() as conn:
        for tenant in await orgs(owner, sweep_settings):
            for status, updated, end, is_stale in cases:
                row = await add(
                    conn,
                    m.Itinerary,
                    org_id=tenant.org_id,
                    created_by=tenant.admin.user_id,
                    title="t",
                    start_date=end - 5 * DAY,
                    end_date=end,
                    status=status,
                    updated_at=ago(updated),
                )
                if not is_stale:
                    kept.add(row)
    report = await sweep(sessions, policy(sweep_settings, "itineraries"), 50)
    assert report.rows == {"drafts": 3, "finals": 3}
    assert await ids(owner, m.Itinerary) == kept


async def test_idempotency_records_go_after_expiry(
    clean: None,
    owner: AsyncEngine,
    sweep_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with owner.begin() as conn:
        for tenant in await orgs(owner, sweep_settings):
            for key, expires in (("old", ago(timedelta(seconds=1))), ("live", ago(-DAY))):
                await conn.execute(
                    insert(m.IdempotencyRecord).values(
                        org_id=tenant.org_id,
                        user_id=tenant.member.user_id,
                        key=key,
                        fingerprint=b"f",
                        status=201,
                        headers={},
                        body=b"",
                        expires_at=expires,
                    )
                )
    report = await sweep(sessions, policy(sweep_settings, "idempotency_records"), 50)
    assert report.total == 3
    async with owner.connect() as conn:
        keys = (await conn.execute(select(m.IdempotencyRecord.key))).scalars().all()
    assert sorted(keys) == ["live"] * 3


async def test_expired_chat_sessions_go_with_their_messages(
    clean: None,
    owner: AsyncEngine,
    sweep_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    live_sessions, leads = set(), set()
    async with owner.begin() as conn:
        for tenant in await orgs(owner, sweep_settings):
            for expired in (True, False):
                expires = ago(timedelta(minutes=1)) if expired else ago(-DAY)
                session = await add(
                    conn,
                    m.ChatSession,
                    org_id=tenant.org_id,
                    created_by=tenant.member.user_id,
                    expires_at=expires,
                )
                for n in range(2):
                    await add(
                        conn,
                        m.ChatMessage,
                        org_id=tenant.org_id,
                        session_id=session,
                        role="user",
                        content=f"m{n}",
                    )
                leads.add(
                    await add(
                        conn,
                        m.Lead,
                        org_id=tenant.org_id,
                        email=f"{session}@x.example",
                        source="chat",
                        chat_session_id=session,
                    )
                )
                if not expired:
                    live_sessions.add(session)
    report = await sweep(sessions, policy(sweep_settings, "chat_sessions"), 50)
    assert report.rows == {"messages": 6, "sessions": 3}
    assert await ids(owner, m.ChatSession) == live_sessions
    async with owner.connect() as conn:
        remaining = {row.session_id for row in await conn.execute(select(m.ChatMessage.session_id))}
        kept_leads = {row.id: row.chat_session_id for row in await conn.execute(select(m.Lead))}
    assert remaining == live_sessions
    assert set(kept_leads) == leads, "leads outlive their chat sessions"
    assert {s for s in kept_leads.values() if s is not None} == live_sessions


async def test_refresh_tokens_go_after_family_expiry_or_a_week_revoked(
    clean: None,
    owner: AsyncEngine,
    sweep_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    kept = set()
    cases = [  # (family expires, revoked, stale?)
        (ago(timedelta(seconds=1)), None, True),
        (ago(-DAY), ago(8 * DAY), True),
        (ago(-DAY), ago(6 * DAY), False),
        (ago(-DAY), None, False),
    ]
    async with owner.begin() as conn:
        for tenant in await orgs(owner, sweep_settings):
            for expires, revoked, is_stale in cases:
                token = await add(
                    conn,
                    m.RefreshToken,
                    org_id=tenant.org_id,
                    user_id=tenant.member.user_id,
                    family_id=new_id(),
                    token_hash=new_id().bytes * 2,
                    family_expires_at=expires,
                    revoked_at=revoked,
                )
                if not is_stale:
                    kept.add(token)
    report = await sweep(sessions, policy(sweep_settings, "refresh_tokens"), 50)
    assert report.total == 6
    assert await ids(owner, m.RefreshToken) == kept


async def stale_drafts(owner: AsyncEngine, tenant: Tenant, n: int) -> None:
    """``n`` drafts untouched for a year, made in one server-side statement."""
    async with owner.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO itinerary (org_id, id, created_by, title, start_date, end_date,"
                " status, updated_at) SELECT :org, gen_random_uuid(), :user, 'old', '2020-01-01',"
                " '2020-01-02', 'draft', now() - interval '365 days' FROM generate_series(1, :n)"
            ),
            {"org": tenant.org_id, "user": tenant.admin.user_id, "n": n},
        )


async def test_two_sweepers_at_once_delete_each_row_once(
    clean: None,
    owner: AsyncEngine,
    sweep_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    (tenant,) = await orgs(owner, sweep_settings, 1)
    await stale_drafts(owner, tenant, 5000)
    drafts = policy(sweep_settings, "itineraries")
    first, second = await asyncio.gather(sweep(sessions, drafts, 100), sweep(sessions, drafts, 100))
    assert first.total + second.total == 5000
    assert first.skipped or second.skipped, "one of them found the policy's lock taken"
    assert await ids(owner, m.Itinerary) == set()


async def test_a_large_sweep_never_blocks_live_writes(
    clean: None,
    owner: AsyncEngine,
    sweep_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    (tenant,) = await orgs(owner, sweep_settings, 1)
    await stale_drafts(owner, tenant, 200_000)
    latencies: list[float] = []
    async with running_app(sweep_settings) as client:

        async def write_while_sweeping(done: anyio.Event) -> None:
            while not done.is_set():
                started = time.perf_counter()
                response = await client.post(
                    "/v1/itineraries",
                    json={"title": "live", "start_date": "2027-01-01", "end_date": "2027-01-02"},
                    headers=with_key(tenant.member),
                )
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 201

        done = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(write_while_sweeping, done)
            report = await sweep(sessions, policy(sweep_settings, "itineraries"), 1000)
            done.set()
    assert report.rows["drafts"] == 200_000
    assert len(latencies) > 10
    median = sorted(latencies)[len(latencies) // 2]
    print(
        f"\nlive writes during a 200k-row sweep: {len(latencies)}, "
        f"worst {max(latencies) * 1000:.1f} ms, median {median * 1000:.1f} ms"
    )
    assert len(await ids(owner, m.Itinerary)) == len(latencies)


async def test_shutdown_mid_sweep_leaves_no_half_batch(
    clean: None,
    owner: AsyncEngine,
    sweep_settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    superuser_of: Any,
) -> None:
    (tenant,) = await orgs(owner, sweep_settings, 1)
    await stale_drafts(owner, tenant, 20_000)
    async with anyio.create_task_group() as group:
        group.start_soon(sweep, sessions, policy(sweep_settings, "itineraries"), 1000)
        # Cut it off once the first batches are in, wherever it is then.
        while len(await ids(owner, m.Itinerary)) == 20_000:
            await anyio.sleep(0.005)
        group.cancel_scope.cancel()
    remaining = len(await ids(owner, m.Itinerary))
    assert 0 < remaining < 20_000, "the sweep was cut off partway"
    assert remaining % 1000 == 0, "batches are all or nothing"
    stuck = await superuser_of.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sweep-tests' "
        "AND state LIKE 'idle in transaction%'"
    )
    assert stuck == 0


async def eventually(check: Any, seconds: float = 30.0) -> None:
    """Poll ``check()`` until it is true; a busy machine may need a while."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "timed out waiting"
        await anyio.sleep(0.02)


async def test_a_sweeper_recovers_on_the_next_tick(
    clean: None, owner: AsyncEngine, sweep_settings: Settings, superuser_of: Any
) -> None:
    (tenant,) = await orgs(owner, sweep_settings, 1)
    await stale_drafts(owner, tenant, 10)
    assert sweep_settings.admin_database_url is not None
    engine = create_engine(
        sweep_settings.admin_database_url, sweep_settings, application_name="sweeper-under-test"
    )
    metrics = Metrics()
    failures = metrics.sweep_failures.labels("itineraries")

    async def failed_once() -> bool:
        return bool(failures._value.get() >= 1)

    async def swept_clean() -> bool:
        return not await ids(owner, m.Itinerary)

    await superuser_of.execute("ALTER ROLE itinera_owner NOLOGIN")
    try:
        async with anyio.create_task_group() as group:
            await group.start(
                lambda task_status: run_sweeper(
                    session_factory(engine),
                    policy(sweep_settings, "itineraries"),
                    interval_seconds=0.05,
                    batch_size=100,
                    metrics=metrics,
                    task_status=task_status,
                )
            )
            await eventually(failed_once)
            await superuser_of.execute("ALTER ROLE itinera_owner LOGIN")
            await eventually(swept_clean)
            group.cancel_scope.cancel()
    finally:
        await superuser_of.execute("ALTER ROLE itinera_owner LOGIN")
        await engine.dispose()
    assert failures._value.get() >= 1
    assert await ids(owner, m.Itinerary) == set()


async def test_the_service_runs_its_sweepers(
    clean: None, owner: AsyncEngine, sweep_settings: Settings
) -> None:
    (tenant,) = await orgs(owner, sweep_settings, 1)
    await stale_drafts(owner, tenant, 7)
    eager = sweep_settings.replace(sweepers_enabled=True, sweep_interval_seconds=0.05)
    swept = 'itinera_retention_rows_deleted_total{policy="itineraries"} 7.0'
    async with running_app(eager) as client:

        async def reported() -> bool:
            return swept in (await client.get("/metrics")).text

        await eventually(reported)
    assert await ids(owner, m.Itinerary) == set()


async def test_sweep_command(clean: None, owner: AsyncEngine, sweep_settings: Settings) -> None:
    (tenant,) = await orgs(owner, sweep_settings, 1)
    await stale_drafts(owner, tenant, 4)
    assert sweep_settings.database_url
    assert sweep_settings.admin_database_url
    env = {
        "DATABASE_URL": sweep_settings.database_url,
        "ITINERA_ADMIN_DATABASE_URL": sweep_settings.admin_database_url,
        "ITINERA_EMBEDDING_DIM": str(sweep_settings.embedding_dim),
    }
    dry = run_cli("sweep", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "itineraries: would delete 4 drafts, 0 finals" in dry.stdout
    assert len(await ids(owner, m.Itinerary)) == 4
    done = run_cli("sweep", env=env)
    assert done.returncode == 0, done.stderr
    assert "itineraries: deleted 4 drafts, 0 finals" in done.stdout
    assert "agent_runs: deleted 0 tool calls, 0 checkpoints, 0 runs" in done.stdout
    assert await ids(owner, m.Itinerary) == set()
