"""The LangGraph checkpointer: ``ItineraSaver`` through the service against
langgraph-checkpoint-postgres's ``AsyncPostgresSaver`` on the same PostgreSQL.

Checkpoints saved (``aput``) and read back (``aget_tuple`` of a thread's
latest) per second, 16 tasks each on a thread of its own
(``bench.checkpoint_load``), with the same state and serialiser for both.
ItineraSaver goes through the service as the demo admin with an API key, with
a saver (and so a client and its connection pool) per task and with one saver
shared by all tasks; the peer with a saver per task, each on a connection of
its own (one shared saver takes a lock around every statement, so 16 tasks on
it do no better than one), on its own ``setup()`` tables in the service's
database, as the owner over the same unix socket. Then the wall time of 200
runs of a two-node graph stopped at an ``interrupt()`` and resumed, 16 at a
time: on one shared ItineraSaver, and on the peer with a graph and saver per
task.

Last, the service is restarted with a pool of 16 connections (one per task, as
the peer has), and the per-task saver and the graph runs are measured again:
with the default 10 + 5, 16 requests in flight keep opening and closing the
pool's overflow connections. So this runs after everything else that uses the
service.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import asyncpg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from bench.checkpoint_load import (
    CONCURRENCY,
    GET,
    GRAPH_RUNS,
    PUT,
    WRITES,
    GraphRuns,
    Meters,
    Rate,
    Thread,
    graph_runs,
    measure,
    trip_graph,
    wire_costs,
)
from bench.report import Row
from bench.stack import Stack
from itinera_client import ItineraClient
from itinera_client.langgraph import ItineraSaver
from itinera_client.schemas.api_keys import ApiKeyCreate

RATIO_TARGET = 0.5  # the saver through HTTP at half the peer's rate on the database, at least
STORE = "ItineraSaver"
PEER = "AsyncPostgresSaver"
PER_TASK = f"{STORE}, saver per task"
SHARED = f"{STORE}, one saver"
PEER_PER_TASK = f"{PEER}, saver per task"
POOL = 16  # the service's pool for the last runs: a connection per task
PER_TASK_POOL = f"{PER_TASK}, service pool {POOL}"
SHARED_POOL = f"{SHARED}, service pool {POOL}"


@dataclass(slots=True)
class Runs:
    puts: dict[str, Rate] = field(default_factory=dict)
    reads: dict[str, Rate] = field(default_factory=dict)
    graphs: dict[str, GraphRuns] = field(default_factory=dict)
    wire: dict[str, Any] = field(default_factory=dict)


async def _api_key(base_url: str, demo: tuple[str, str, str]) -> str:
    async with ItineraClient(base_url) as client:
        await client.login(*demo)
        me = await client.me()
        key = ApiKeyCreate(user_id=me.user.id, name="bench-langgraph")
        return (await client.api_keys.create(key)).secret


async def _saves_and_reads(
    runs: Runs,
    name: str,
    savers: list[Any],
    stack: Stack,
    watch: asyncpg.Connection,
    warmup: float,
    seconds: float,
) -> None:
    through_service = isinstance(savers[0], ItineraSaver)
    tag = uuid.uuid4().hex[:8]
    threads = [Thread(f"bench/{tag}/{n}", savers[n % len(savers)]) for n in range(CONCURRENCY)]

    async def put(n: int) -> None:
        await threads[n].put()

    async def get(n: int) -> None:
        await threads[n].get()

    print(f"  {name}: aput, warm-up {warmup:g} s, run {seconds:g} s", flush=True)
    meters = Meters(stack, watch, [PUT] if through_service else [])
    runs.puts[name] = await measure(put, meters, warmup, seconds)
    print(f"  {name}: aget_tuple, warm-up {warmup:g} s, run {seconds:g} s", flush=True)
    meters = Meters(stack, watch, [GET] if through_service else [])
    runs.reads[name] = await measure(get, meters, warmup, seconds)


@contextlib.asynccontextmanager
async def _savers(url: str, api_key: str) -> Any:
    """A saver per task, each on a client of its own, and one saver."""
    async with contextlib.AsyncExitStack() as exits:
        clients = [
            await exits.enter_async_context(ItineraClient(url, api_key=api_key))
            for _ in range(CONCURRENCY + 1)
        ]
        yield [ItineraSaver(client=c) for c in clients[:-1]], ItineraSaver(client=clients[-1])


async def _on_the_service(
    runs: Runs, stack: Stack, api_key: str, warmup: float, seconds: float
) -> None:
    watch = await asyncpg.connect(stack.owner_dsn)
    try:
        async with _savers(stack.service_url, api_key) as (per_task, shared):
            await _saves_and_reads(runs, PER_TASK, per_task, stack, watch, warmup, seconds)
            await _saves_and_reads(runs, SHARED, [shared], stack, watch, warmup, seconds)
            print(f"  {STORE}: {GRAPH_RUNS} interrupt-and-resume runs, one saver", flush=True)
            meters = Meters(stack, watch, [GET, PUT, WRITES])
            runs.graphs[STORE] = await graph_runs([trip_graph(shared)], meters)
            runs.wire = wire_costs(shared)

        async with contextlib.AsyncExitStack() as exits:
            peers = [
                await exits.enter_async_context(
                    AsyncPostgresSaver.from_conn_string(stack.owner_dsn)
                )
                for _ in range(CONCURRENCY)
            ]
            await peers[0].setup()
            await _saves_and_reads(runs, PEER_PER_TASK, peers, stack, watch, warmup, seconds)
            print(f"  {PEER}: {GRAPH_RUNS} interrupt-and-resume runs, saver per task", flush=True)
            apps = [trip_graph(peer) for peer in peers]
            runs.graphs[PEER] = await graph_runs(apps, Meters(stack, watch, []))
    finally:
        await watch.close()


async def _with_a_bigger_pool(
    runs: Runs, stack: Stack, api_key: str, warmup: float, seconds: float
) -> None:
    watch = await asyncpg.connect(stack.owner_dsn)
    try:
        async with _savers(stack.service_url, api_key) as (per_task, shared):
            await _saves_and_reads(runs, PER_TASK_POOL, per_task, stack, watch, warmup, seconds)
            print(f"  {STORE}: {GRAPH_RUNS} interrupt-and-resume runs, one saver", flush=True)
            meters = Meters(stack, watch, [GET, PUT, WRITES])
            runs.graphs[SHARED_POOL] = await graph_runs([trip_graph(shared)], meters)
    finally:
        await watch.close()


@dataclass(slots=True)
class CheckpointerOutcome:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


def measure_checkpointer(
    stack: Stack, demo: tuple[str, str, str], warmup_seconds: float, seconds: float
) -> CheckpointerOutcome:
    """Saves and reads per second on each saver, the graph runs' wall times: rows, notes
    and facts. Restarts the service (see the module's docstring) and leaves it running."""
    api_key = asyncio.run(_api_key(stack.service_url, demo))
    runs = Runs()
    asyncio.run(_on_the_service(runs, stack, api_key, warmup_seconds, seconds))
    print(f"  the service again, with ITINERA_DB_POOL_SIZE={POOL}", flush=True)
    stack.stop_service()
    stack.start_service(stack.env | {"ITINERA_DB_POOL_SIZE": str(POOL)})
    asyncio.run(_with_a_bigger_pool(runs, stack, api_key, warmup_seconds, seconds))

    outcome = CheckpointerOutcome()
    for verb, rates in (("aput", runs.puts), ("aget_tuple", runs.reads)):
        ceiling = f"{verb}: {PEER_PER_TASK}"
        outcome.rows += [
            _row(f"{verb}: {name}", rates[name], ceiling, rates[PEER_PER_TASK])
            for name in (PER_TASK, SHARED, PER_TASK_POOL)
        ]
        outcome.rows.append(_row(f"  {ceiling}", rates[PEER_PER_TASK]))
    ours, theirs = runs.graphs[STORE], runs.graphs[PEER]
    graph_peer = f"{GRAPH_RUNS} graph runs: {PEER}, saver per task"
    outcome.rows += [
        _graph_row(f"{GRAPH_RUNS} graph runs: {SHARED}", ours, graph_peer, theirs),
        _graph_row(
            f"{GRAPH_RUNS} graph runs: {SHARED_POOL}", runs.graphs[SHARED_POOL], graph_peer, theirs
        ),
        _graph_row(f"  {graph_peer}", theirs),
    ]
    outcome.notes = _notes(runs)
    outcome.facts = {
        "concurrency": CONCURRENCY,
        "graph_runs": GRAPH_RUNS,
        "graph_wall_seconds": {name: graph.wall_seconds for name, graph in runs.graphs.items()},
        "per_operation": {
            name: {
                verb: _facts(rates[name])
                for verb, rates in (("aput", runs.puts), ("aget_tuple", runs.reads))
            }
            for name in runs.puts
        },
        "wire": runs.wire,
    }
    return outcome


def _facts(rate: Rate) -> dict[str, Any]:
    spent = rate.spent
    return {
        "client_cpu_ms": spent.client_cpu_ms,
        "service_cpu_ms": spent.service_cpu_ms,
        "postgres_cpu_ms": spent.postgres_cpu_ms,
        "service_ms": spent.service_ms,
        "postgres_sessions_opened": spent.sessions,
    }


def _row(name: str, rate: Rate, ceiling: str | None = None, peer: Rate | None = None) -> Row:
    spent, driven = rate.spent, rate.driven
    through_service = spent.service_cpu_ms is not None
    counted = spent.round_trips
    return Row(
        name=name,
        rate=rate.per_second,
        p50_ms=driven.p50_ms,
        p99_ms=driven.p99_ms,
        non_2xx=driven.errors,
        # The service's CPU for ItineraSaver; this process's for the peer, which runs here.
        app_cpu_ms=spent.service_cpu_ms if through_service else spent.client_cpu_ms,
        postgres_cpu_ms=spent.postgres_cpu_ms,
        ceiling=ceiling,
        ratio=None if peer is None else rate.per_second / peer.per_second,
        min_ratio=None if peer is None else RATIO_TARGET,
        db_round_trips=counted.database if counted else None,
        redis_round_trips=counted.redis if counted else None,
        counted_requests=counted.requests if counted else None,
    )


def _graph_row(
    name: str, runs: GraphRuns, ceiling: str | None = None, peer: GraphRuns | None = None
) -> Row:
    spent = runs.spent
    through_service = spent.service_cpu_ms is not None
    counted = spent.round_trips
    per_run = spent.requests or 0.0
    return Row(
        name=name,
        rate=GRAPH_RUNS / runs.wall_seconds,
        p50_ms=runs.p50_ms,
        p99_ms=runs.p99_ms,
        app_cpu_ms=spent.service_cpu_ms if through_service else spent.client_cpu_ms,
        postgres_cpu_ms=spent.postgres_cpu_ms,
        ceiling=ceiling,
        ratio=None if peer is None else peer.wall_seconds / runs.wall_seconds,
        # Per run: the run's requests times their round trips.
        db_round_trips=None if counted is None else (counted.database or 0.0) * per_run,
        redis_round_trips=None if counted is None else (counted.redis or 0.0) * per_run,
        counted_requests=counted.requests if counted else None,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _profile(name: str, ours: Rate, serialise_us: float) -> str:
    spent = ours.spent
    total = spent.client_cpu_ms + (spent.service_cpu_ms or 0.0) + spent.postgres_cpu_ms
    return (
        f"  where a save's time goes ({name}, per aput): {_ms(spent.client_cpu_ms)} of CPU"
        f" in this process ({serialise_us:.0f} us of it serialising: serde and Structs;"
        f" the rest the client, httpx and asyncio), {_ms(spent.service_cpu_ms)} in the"
        f" service, {_ms(spent.postgres_cpu_ms)} in PostgreSQL: {_ms(total)} of CPU in all,"
        f" which caps {2000.0 / total:,.0f} saves/s on 2 idle cores; a request spent"
        f" {_ms(spent.service_ms)} inside the service on average, of the"
        f" {ours.driven.p50_ms:.1f} ms (p50) the saver waited with {CONCURRENCY} in flight;"
        f" PostgreSQL opened {spent.sessions} sessions meanwhile"
    )


def _notes(runs: Runs) -> list[str]:
    peer = runs.puts[PEER_PER_TASK].spent
    peer_total = peer.client_cpu_ms + peer.postgres_cpu_ms
    wire = runs.wire
    serialise = wire["serialise_put_us"]
    ours, theirs, pooled = runs.graphs[STORE], runs.graphs[PEER], runs.graphs[SHARED_POOL]
    return [
        f"checkpointer rows: {CONCURRENCY} tasks in one asyncio loop in this process, each"
        " saving (aput) the next checkpoint of a LangGraph thread of its own, or reading its"
        " latest back (aget_tuple); state: 10 messages, a plan, a step counter"
        f" (JsonPlusSerializer); {STORE} over ItineraClient with the demo admin's API key,"
        " through the service, a saver (client and connection pool) per task or one for all,"
        f" then per task again on the service restarted with ITINERA_DB_POOL_SIZE={POOL};"
        f" {PEER}: langgraph-checkpoint-postgres {version('langgraph-checkpoint-postgres')}"
        f" on psycopg {version('psycopg')}, from_conn_string() per task (a connection each),"
        " its setup() tables in the service's database, as the owner over the same socket;"
        f" ratio = {STORE}'s rate / the peer's (target >= {RATIO_TARGET:g}); app cpu: the"
        " service's for the saver rows, this process's for the peer's; db rt / redis rt: per"
        " request as the service counted them (graph rows: per run)",
        _profile(PER_TASK, runs.puts[PER_TASK], serialise),
        _profile(PER_TASK_POOL, runs.puts[PER_TASK_POOL], serialise),
        f"  the peer's aput: {_ms(peer.client_cpu_ms)} of CPU here and"
        f" {_ms(peer.postgres_cpu_ms)} in PostgreSQL, {_ms(peer_total)} in all",
        "  wire form: MessagePack, bytes as bytes; this put's body"
        f" {wire['put_bytes']['msgpack']:,} B (JSON with base64: {wire['put_bytes']['json']:,}"
        " B), encode + decode (+ the service's check of free-form objects)"
        f" {wire['put_us']['msgpack']:.1f} us (JSON {wire['put_us']['json']:.1f} us); the"
        f" get's answer {wire['get_bytes']['msgpack']:,} B (JSON {wire['get_bytes']['json']:,}"
        f" B), {wire['get_us']['msgpack']:.1f} us (JSON {wire['get_us']['json']:.1f} us)",
        f"  graph rows: {GRAPH_RUNS} runs of a two-node graph (plan, then approve, which calls"
        " interrupt()), each ainvoke'd on a new thread, then resumed with"
        f" Command(resume='yes'), {CONCURRENCY} at a time; {STORE}: one graph on one saver,"
        f" {ours.wall_seconds:.2f} s ({pooled.wall_seconds:.2f} s on the service with a pool of"
        f" {POOL}), {ours.spent.requests or 0:.1f} requests a run; {PEER}: a graph and saver"
        f" per task, {theirs.wall_seconds:.2f} s; ratio = the peer's wall time / {STORE}'s;"
        " p50/p99: one run's interrupt and resume",
    ]
