"""Several service processes on one PostgreSQL and one Redis: two ``itinera serve`` side by
side, and one ``itinera serve`` with two workers.

Exactly-once, the rate-limit buckets and the sweep locks live in the servers, so
they must hold whichever process a request or a sweep lands in; /metrics must add
up every worker's counts whichever worker answers the scrape.
"""

from __future__ import annotations

import asyncio
import math
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.db import models as m
from itinera.db.engine import create_engine
from itinera.retention.policies import policies
from itinera.retention.sweeper import LOCK_CLASS, lock_key
from itinera.settings import Settings
from tests.support.database import ScratchDatabase, create_database, dispose_database
from tests.support.http import assert_problem
from tests.support.processes import ServerProcess, real_server_environment, serving
from tests.support.servers import PostgresServer
from tests.support.tenants import Account, Tenant, make_tenant

pytestmark = pytest.mark.slow

TRIP = {"title": "Two processes", "start_date": "2027-05-01", "end_date": "2027-05-07"}
AGENT_BUCKET = 5


def samples(exposition: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """The samples called ``name`` whose labels include ``labels``."""
    found = []
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                found.append((sample.labels, sample.value))
    return found


def total(exposition: str, name: str, **labels: str) -> float:
    return sum(value for _, value in samples(exposition, name, **labels))


def clients(servers: list[ServerProcess]) -> list[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    return [httpx.AsyncClient(base_url=s.base_url, limits=limits, timeout=60) for s in servers]


# Two ``itinera serve`` on different ports ------------------------------------------------


@pytest.fixture(scope="module")
def two_servers(settings: Settings) -> Iterator[list[ServerProcess]]:
    env = real_server_environment(
        settings,
        ITINERA_RATE_LIMIT_AGENT_PER_MINUTE=str(AGENT_BUCKET),
        ITINERA_RATE_LIMIT_CRUD_PER_MINUTE="100000",
    )
    with serving(env, env) as servers:
        yield servers


async def count_rows(engine: AsyncEngine, model: type[m.Base], org_id: uuid.UUID) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(model).where(model.org_id == org_id)  # type: ignore[attr-defined]
        return int(await conn.scalar(query) or 0)


async def test_one_key_posted_to_two_processes_at_once_makes_one_itinerary(
    two_servers: list[ServerProcess], tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    headers = {**tenant.member.headers, "Idempotency-Key": f"split-{uuid.uuid4()}"}
    pair = clients(two_servers)
    try:
        answers = await asyncio.gather(
            *(pair[i % 2].post("/v1/itineraries", json=TRIP, headers=headers) for i in range(30))
        )
    finally:
        for client in pair:
            await client.aclose()
    created = [a for a in answers if a.status_code == 201]
    in_flight = [a for a in answers if a.status_code == 409]
    assert len(created) + len(in_flight) == 30, [a.status_code for a in answers]
    assert created, "the first request succeeds"
    assert len({a.content for a in created}) == 1, "every 201 is the same response"
    assert len({a.headers["location"] for a in created}) == 1
    for answer in in_flight:
        assert_problem(answer, 409, "/problems/idempotency-in-flight")
    assert await count_rows(owner_engine, m.Itinerary, tenant.org_id) == 1
    print(f"\nsame key over two processes: {len(created)} x 201, {len(in_flight)} x 409 in flight")


async def test_agent_runs_posted_to_two_processes_share_one_bucket(
    two_servers: list[ServerProcess], tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    member: Account = tenant.member
    pair = clients(two_servers)
    started = time.monotonic()
    try:
        answers = await asyncio.gather(
            *(
                pair[i % 2].post(
                    "/v1/agent-runs",
                    json={"intent": "plan a dive week"},
                    headers={**member.headers, "Idempotency-Key": f"run-{i}-{uuid.uuid4()}"},
                )
                for i in range(40)
            )
        )
    finally:
        for client in pair:
            await client.aclose()
    elapsed = time.monotonic() - started
    # The bucket refills continuously, 5 tokens a minute: a slow run may earn one more.
    refill = math.floor(elapsed * AGENT_BUCKET / 60)
    passed = [i for i, a in enumerate(answers) if a.status_code == 201]
    refused = [a for a in answers if a.status_code == 429]
    assert len(passed) + len(refused) == 40, [a.status_code for a in answers]
    assert AGENT_BUCKET <= len(passed) <= AGENT_BUCKET + refill
    for answer in refused:
        assert answer.headers["ratelimit-policy"] == f'"agent";q={AGENT_BUCKET};w=60'
    assert await count_rows(owner_engine, m.AgentRun, tenant.org_id) == len(passed)
    per_process = [sum(1 for i in passed if i % 2 == n) for n in (0, 1)]
    print(
        f"\nagent bucket over two processes: {len(passed)} passed of 40 "
        f"(per process {per_process}), {len(refused)} x 429, refill allowance {refill}"
    )


# Both processes sweeping -----------------------------------------------------------------

SWEPT_ROWS = 1000
SWEEP_BATCH = 25

# Every batch that deletes itineraries records, per row, which backend deleted it,
# whether that backend held the policy's advisory lock at the time, and how many
# other sweeper connections were inside a writing transaction at that moment (a
# transaction gets an xid at its first write; these sweeps write nothing else).
# The pause keeps each batch's transaction open a while, so that two batches at
# once could not slip past each other unseen.
AUDIT = """
CREATE TABLE sweep_audit (
    itinerary_id uuid NOT NULL,
    backend_pid int NOT NULL,
    held_lock boolean NOT NULL,
    other_writers int NOT NULL
);
CREATE FUNCTION audit_sweep() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_catalog AS $$
DECLARE
    held boolean;
    others int;
BEGIN
    SELECT EXISTS (
        SELECT FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
          AND classid = {lock_class} AND objid = {lock_objid} AND objsubid = 2
    ) INTO held;
    SELECT count(*) FROM pg_stat_activity
    WHERE pid <> pg_backend_pid() AND datname = current_database()
      AND application_name = 'itinera-owner' AND backend_xid IS NOT NULL
    INTO others;
    INSERT INTO sweep_audit SELECT id, pg_backend_pid(), held, others FROM gone;
    PERFORM pg_sleep(0.02);
    RETURN NULL;
END $$;
CREATE TRIGGER audit_sweep AFTER DELETE ON itinerary
REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION audit_sweep();
"""


async def policy_total(server: ServerProcess, name: str) -> float:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        exposition = (await client.get("/metrics")).text
    return total(exposition, name, policy="itineraries")


async def policy_rows(server: ServerProcess) -> float:
    return await policy_total(server, "itinera_retention_rows_deleted_total")


async def policy_sweeps(server: ServerProcess) -> float:
    return await policy_total(server, "itinera_retention_sweep_duration_seconds_count")


@pytest.fixture(scope="module")
async def sweep_db(postgres: PostgresServer) -> AsyncIterator[ScratchDatabase]:
    """A database of its own: the sweepers delete across every tenant."""
    database = await create_database(postgres)
    yield database
    await dispose_database(postgres, database)


async def test_two_processes_sweep_each_policy_one_at_a_time(
    postgres: PostgresServer, sweep_db: ScratchDatabase, redis_url: str
) -> None:
    settings = sweep_db.settings(redis_url=redis_url, sweepers_enabled=True)
    itineraries = next(p for p in policies(settings) if p.name == "itineraries")
    superuser = await asyncpg.connect(postgres.dsn(sweep_db.name))
    owner = create_engine(sweep_db.owner_url, settings, application_name="sweep-tests")
    try:
        await superuser.execute(
            AUDIT.format(lock_class=LOCK_CLASS, lock_objid=lock_key(itineraries) & 0xFFFFFFFF)
        )
        tenant = await make_tenant(owner, settings)
        env = real_server_environment(
            settings,
            ITINERA_SWEEP_INTERVAL_SECONDS="0.3",
            ITINERA_SWEEP_BATCH_SIZE=str(SWEEP_BATCH),
        )
        with serving(env, env) as servers:
            # Both are sweeping (an empty table) by now: the stale rows arrive at once.
            before = [await policy_sweeps(server) for server in servers]
            async with owner.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO itinerary (org_id, id, created_by, title, start_date,"
                        " end_date, status, updated_at) SELECT :org, gen_random_uuid(), :user,"
                        " 'old', '2020-01-01', '2020-01-02', 'draft', now() - interval '1 year'"
                        " FROM generate_series(1, :n)"
                    ),
                    {"org": tenant.org_id, "user": tenant.admin.user_id, "n": SWEPT_ROWS},
                )
            left = SWEPT_ROWS
            for _ in range(600):  # 0.1 s apart
                left = await count_rows(owner, m.Itinerary, tenant.org_id)
                if left == 0:
                    break
                await asyncio.sleep(0.1)
            assert left == 0, f"{left} stale rows were never swept"
            # A sweep counts its rows once it has finished: wait for the last one's count.
            for _ in range(100):  # 0.05 s apart
                deleted = [await policy_rows(server) for server in servers]
                if sum(deleted) >= SWEPT_ROWS:
                    break
                await asyncio.sleep(0.05)
            after = [await policy_sweeps(server) for server in servers]
        audit = await superuser.fetch("SELECT * FROM sweep_audit")
    finally:
        await superuser.close()
        await owner.dispose()

    assert len(audit) == SWEPT_ROWS
    assert len({row["itinerary_id"] for row in audit}) == SWEPT_ROWS, "a row deleted twice"
    assert all(row["held_lock"] for row in audit), "a batch deleted without the policy's lock"
    overlaps = sum(1 for row in audit if row["other_writers"])
    assert overlaps == 0, f"{overlaps} rows deleted while another sweep was writing"
    assert sum(deleted) == SWEPT_ROWS, f"rows counted per process: {deleted}"
    assert all(n >= 1 for n in after), f"both processes sweep: {after}"
    during = [a - b for a, b in zip(after, before, strict=True)]
    print(
        f"\nsweeps over two processes: rows deleted per process {deleted}; sweeps of the policy"
        f" per process {after}, {during} of them while the rows were there;"
        f" {len({row['backend_pid'] for row in audit})} backends deleted"
    )


# One ``itinera serve`` with two workers --------------------------------------------------


def worker_counts(metrics_dir: Path, pids: set[int], route: str) -> dict[int, float]:
    """Each worker's own count of 200s on ``route``, from the files it writes its values to."""
    counts: dict[int, float] = {}
    for pid in pids:
        files = [str(f) for f in metrics_dir.glob(f"counter_{pid}.db")]
        counts[pid] = sum(
            sample.value
            for family in MultiProcessCollector.merge(files)  # type: ignore[no-untyped-call]
            for sample in family.samples
            if sample.name == "itinera_http_requests_total"
            and sample.labels.get("route") == route
            and sample.labels.get("status") == "200"
        )
    return counts


async def counted(metrics_dir: Path, pids: set[int], sent: int) -> dict[int, float]:
    """The workers' counts of GET /v1/me once they reach ``sent`` (or after 5 s): a worker
    counts a request just after it has sent the response."""
    for _ in range(100):
        counts = worker_counts(metrics_dir, pids, "/v1/me")
        if sum(counts.values()) >= sent:
            break
        await asyncio.sleep(0.05)
    return counts


def pool_pids(exposition: str) -> set[int]:
    """The workers whose pools /metrics shows (each worker's gauges carry its pid)."""
    pool_samples = samples(exposition, "itinera_db_pool_connections")
    assert all("pid" in labels for labels, _ in pool_samples), "gauges of one process only"
    return {int(labels["pid"]) for labels, _ in pool_samples}


async def scrape(base_url: str) -> str:
    # A connection of its own each time, so that scrapes land on either worker.
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_two_workers_share_the_requests_and_metrics_add_them_up(
    settings: Settings, tenant: Tenant
) -> None:
    env = real_server_environment(
        settings, ITINERA_WORKERS="2", ITINERA_RATE_LIMIT_CRUD_PER_MINUTE="100000"
    )
    with serving(env) as (server,):
        shared = [
            line["message"].rpartition(" in ")[2]
            for line in server.log_lines()
            if line["message"].startswith("2 workers share metrics in ")
        ]
        assert len(shared) == 1, server.log()[-2000:]
        metrics_dir = Path(shared[0])
        workers = {p.pid for p in psutil.Process(server.pid).children()}
        # Every worker publishes its pools as it starts: any scrape shows both, once
        # both have started (/ready answered by one of them says nothing of the other).
        for _ in range(600):  # 0.1 s apart
            pids = pool_pids(await scrape(server.base_url))
            if len(pids) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(pids) == 2, pids
        assert pids <= workers, (pids, workers)

        # One connection per request: which worker accepts each is up to the kernel,
        # so send batches until both have served some (bounded).
        sent = 0
        no_keep_alive = httpx.Limits(max_connections=20, max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=server.base_url, limits=no_keep_alive, timeout=30
        ) as client:
            for _ in range(10):
                answers = await asyncio.gather(
                    *(client.get("/v1/me", headers=tenant.member.headers) for _ in range(20))
                )
                assert {a.status_code for a in answers} == {200}
                sent += len(answers)
                per_worker = await counted(metrics_dir, pids, sent)
                if all(per_worker.values()):
                    break
        assert sum(per_worker.values()) == sent, per_worker
        assert all(per_worker.values()), f"one worker served everything: {per_worker}"

        # Whichever worker answers, /metrics is the sum over both.
        scrapes = [await scrape(server.base_url) for _ in range(6)]
        totals = {
            total(s, "itinera_http_requests_total", route="/v1/me", status="200") for s in scrapes
        }
        assert totals == {sent}, totals

        # uvicorn replaces every worker on SIGHUP: the old ones' pools leave /metrics
        # (their gauges are retired as they exit), their counts stay in the sum.
        server.process.send_signal(signal.SIGHUP)
        for _ in range(600):  # 0.1 s apart
            after = await scrape(server.base_url)
            replaced = pool_pids(after)
            if len(replaced) == 2 and not replaced & pids:
                break
            await asyncio.sleep(0.1)
        assert len(replaced) == 2, replaced
        assert not replaced & pids, (replaced, pids)
        assert total(after, "itinera_http_requests_total", route="/v1/me", status="200") == sent
    assert not metrics_dir.exists(), "serve removes its metrics directory"
    print(f"\ntwo workers: {sent} requests, per worker {per_worker}, /metrics {totals}")
