"""The load the checkpointer rows put on a saver, and what is measured around it.

``CONCURRENCY`` tasks in one asyncio loop, each on a LangGraph thread of its
own, saving its next checkpoint (``aput``) or reading its latest back
(``aget_tuple``) until the time is up; or ``GRAPH_RUNS`` runs of a graph that
stops at an ``interrupt()`` and is resumed. Around each measured window: the
CPU of this process, the service and PostgreSQL, the PostgreSQL sessions
opened, and what the service counted (/metrics) on the thread routes.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

import asyncpg
import msgspec
import numpy as np
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint, empty_checkpoint
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from bench.api import RoundTrips, scrape
from bench.processes import CpuMeter
from bench.stack import Stack
from itinera.routing import unstorable
from itinera_client.langgraph import ItineraSaver
from itinera_client.langgraph_wire import checkpoint_put
from itinera_client.schemas.threads import CheckpointPut, CheckpointTuple

CONCURRENCY = 16
GRAPH_RUNS = 200
PUT = ("POST", "/v1/threads/checkpoints")
GET = ("GET", "/v1/threads/checkpoint")
WRITES = ("POST", "/v1/threads/writes")

# The state of a chat agent: ten messages of a conversation, a plan, a step counter.
MESSAGES = [
    {
        "role": "user" if n % 2 == 0 else "assistant",
        "content": f"Message {n}: which Red Sea sites suit an advanced diver in May? " * 3,
    }
    for n in range(10)
]
PLAN = {"days": [{"day": d, "dives": ["Thistlegorm", "Ras Mohammed"]} for d in range(7)]}


@dataclass(frozen=True, slots=True)
class Counted:
    """What the service counted on some routes so far (its /metrics)."""

    requests: float
    database: float
    redis: float
    seconds: float  # inside the service: its latency histogram's sum

    @classmethod
    def read(cls, base_url: str, routes: list[tuple[str, str]]) -> Counted:
        exposition = scrape(base_url)

        def total(name: str) -> float:
            return sum(
                value
                for labels, value in exposition.samples_of(name)
                if (labels.get("method"), labels.get("route")) in routes
            )

        return cls(
            total("itinera_http_requests_total"),
            total("itinera_db_round_trips_total"),
            total("itinera_redis_round_trips_total"),
            total("itinera_http_request_duration_seconds_sum"),
        )


@dataclass(frozen=True, slots=True)
class Spent:
    """Per operation (a save, a read, a graph run) over a measured window."""

    client_cpu_ms: float  # this process's: the saver, its client, the serialiser
    postgres_cpu_ms: float  # all PostgreSQL backends'
    sessions: int  # PostgreSQL sessions opened during the window, in all
    service_cpu_ms: float | None = None  # None: no service in the loop
    requests: float | None = None  # requests the service counted per operation
    round_trips: RoundTrips | None = None  # per request
    service_ms: float | None = None  # mean time a request spent inside the service


class Meters:
    """CPU of this process, the service and PostgreSQL around one measured window, the
    sessions PostgreSQL opened meanwhile (read on ``watch``, a connection kept open), and
    what the service counted on ``routes`` (none: the service is not in the loop)."""

    def __init__(
        self, stack: Stack, watch: asyncpg.Connection, routes: list[tuple[str, str]]
    ) -> None:
        self.stack = stack
        self.watch = watch
        self.routes = routes
        self.here = stack.cpu_meter(None)
        self.service = stack.cpu_meter(stack.service) if routes else None

    async def window(self, measured: Callable[[], Awaitable[int]]) -> Spent:
        """Run ``measured`` (it answers how many operations it did) between two readings."""
        # /metrics is read outside the CPU window: a read costs the service some CPU.
        counted_before = await self._counted()
        sessions_before = await self._sessions()
        service_before = self.service.snapshot() if self.service else None
        here_before = self.here.snapshot()
        done = max(await measured(), 1)
        here_after = self.here.snapshot()
        service_after = self.service.snapshot() if self.service else None
        sessions = await self._sessions() - sessions_before
        counted_after = await self._counted()
        client, postgres = CpuMeter.spent(here_before, here_after)
        per = 1000.0 / done
        service_cpu = None
        if service_before is not None and service_after is not None:
            service_cpu = CpuMeter.spent(service_before, service_after)[0] * per
        if counted_before is None or counted_after is None:
            return Spent(client * per, postgres * per, sessions, service_cpu)
        requests = round(counted_after.requests - counted_before.requests)
        each = max(requests, 1)
        return Spent(
            client * per,
            postgres * per,
            sessions,
            service_cpu,
            requests / done,
            RoundTrips(
                requests,
                (counted_after.database - counted_before.database) / each,
                (counted_after.redis - counted_before.redis) / each,
            ),
            1000.0 * (counted_after.seconds - counted_before.seconds) / each,
        )

    async def _counted(self) -> Counted | None:
        if not self.routes:
            return None
        return await asyncio.to_thread(Counted.read, self.stack.service_url, self.routes)

    async def _sessions(self) -> int:
        # The statistics of other backends reach this view within a second or so.
        await asyncio.sleep(1.0)
        found = await self.watch.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(found)


@dataclass(frozen=True, slots=True)
class Driven:
    done: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass(frozen=True, slots=True)
class Rate:
    driven: Driven
    spent: Spent

    @property
    def per_second(self) -> float:
        return self.driven.done / self.driven.seconds


class Thread:
    """One task's LangGraph thread: the next checkpoint to save after the last one."""

    def __init__(self, name: str, saver: BaseCheckpointSaver[Any]) -> None:
        self.name = name
        self.saver = saver
        self.parent: str | None = None
        self.versions: dict[str, Any] = {}
        self.step = 0

    def next_put(self) -> tuple[RunnableConfig, Checkpoint, Any, dict[str, Any]]:
        """``aput``'s arguments: the plan is saved once, the messages and step every time."""
        checkpoint = empty_checkpoint()
        changed = ["messages", "step"] if self.versions else ["messages", "plan", "step"]
        for channel in changed:
            self.versions[channel] = self.saver.get_next_version(self.versions.get(channel), None)
        checkpoint["channel_values"] = {"messages": MESSAGES, "plan": PLAN, "step": self.step}
        checkpoint["channel_versions"] = dict(self.versions)
        configurable = {"thread_id": self.name, "checkpoint_ns": ""}
        if self.parent is not None:
            configurable["checkpoint_id"] = self.parent
        metadata = {"source": "loop", "step": self.step, "parents": {}}
        self.parent = checkpoint["id"]
        self.step += 1
        new_versions = {c: self.versions[c] for c in changed}
        return {"configurable": configurable}, checkpoint, metadata, new_versions

    async def put(self) -> None:
        await self.saver.aput(*self.next_put())

    async def get(self) -> None:
        found = await self.saver.aget_tuple({"configurable": {"thread_id": self.name}})
        if found is None or found.checkpoint["channel_values"]["plan"] != PLAN:
            raise RuntimeError(f"{self.name}: its latest checkpoint did not come back whole")


async def drive(operation: Callable[[int], Awaitable[None]], seconds: float) -> Driven:
    """``CONCURRENCY`` tasks, task n calling ``operation(n)`` until ``seconds`` are up."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def task(n: int) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                await operation(n)
            except Exception:
                errors += 1
            latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(task(n) for n in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    p50, p99 = np.percentile(np.array(latencies) * 1000.0, [50, 99])
    return Driven(len(latencies), elapsed, float(p50), float(p99), errors)


async def measure(
    operation: Callable[[int], Awaitable[None]],
    meters: Meters,
    warmup: float,
    seconds: float,
) -> Rate:
    """A warm-up (not reported), then the measured run with its CPU and counts."""
    await drive(operation, warmup)
    measured: list[Driven] = []

    async def run() -> int:
        measured.append(await drive(operation, seconds))
        return measured[0].done

    spent = await meters.window(run)
    return Rate(measured[0], spent)


class Trip(TypedDict, total=False):
    request: str
    plan: str
    approved: bool


def _plan(state: Trip) -> Trip:
    return {"plan": f"7 days of diving: {state['request']}"}


def _approve(state: Trip) -> Trip:
    return {"approved": interrupt({"plan": state["plan"]}) == "yes"}


def trip_graph(saver: BaseCheckpointSaver[Any]) -> Any:
    """Two nodes: a plan, then an approval that stops the run until it is answered."""
    graph = StateGraph(Trip)
    graph.add_node("plan", _plan)
    graph.add_node("approve", _approve)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "approve")
    graph.add_edge("approve", END)
    return graph.compile(checkpointer=saver)


@dataclass(frozen=True, slots=True)
class GraphRuns:
    wall_seconds: float
    p50_ms: float
    p99_ms: float
    spent: Spent  # per run


async def graph_runs(apps: list[Any], meters: Meters) -> GraphRuns:
    """``GRAPH_RUNS`` runs, each stopped at its interrupt and resumed, ``CONCURRENCY`` at a
    time, each on a new thread; task n runs ``apps[n % len(apps)]``."""
    numbers = itertools.count()
    prefix = f"bench/graph/{uuid.uuid4()}"
    latencies: list[float] = []
    walls: list[float] = []

    async def task(n: int) -> None:
        app = apps[n % len(apps)]
        while (run := next(numbers)) < GRAPH_RUNS:
            config = {"configurable": {"thread_id": f"{prefix}/{run}"}}
            began = time.perf_counter()
            paused = await app.ainvoke({"request": "the Red Sea in May"}, config)
            done = await app.ainvoke(Command(resume="yes"), config)
            if "__interrupt__" not in paused or done.get("approved") is not True:
                raise RuntimeError(f"run {run} did not stop and resume: {paused}, {done}")
            latencies.append(time.perf_counter() - began)

    async def runs() -> int:
        started = time.perf_counter()
        await asyncio.gather(*(task(n) for n in range(CONCURRENCY)))
        walls.append(time.perf_counter() - started)
        return GRAPH_RUNS

    spent = await meters.window(runs)
    p50, p99 = np.percentile(np.array(latencies) * 1000.0, [50, 99])
    return GraphRuns(walls[0], float(p50), float(p99), spent)


def _best_us(work: Callable[[], object], loops: int = 200, rounds: int = 7) -> float:
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(loops):
            work()
        best = min(best, (time.perf_counter() - began) / loops)
    return best * 1e6


def wire_costs(saver: ItineraSaver) -> dict[str, Any]:
    """The bench's put as ItineraSaver sends it, and the get's answer: the time to
    serialise the put here (serde and Structs), and both in MessagePack against JSON
    (bytes as base64): sizes, and encode + decode as client and service do them (the
    service also checks a MessagePack body's free-form objects and text, which JSON's
    decoder does by itself)."""
    thread = Thread("bench/wire", saver)
    first = checkpoint_put(saver.serde, *thread.next_put())  # every channel's value
    arguments = thread.next_put()
    put = checkpoint_put(saver.serde, *arguments)
    # What a read of this checkpoint answers: it, with the value of every channel it names.
    answer = CheckpointTuple(
        thread_id=put.thread_id,
        checkpoint_ns=put.checkpoint_ns,
        checkpoint_id=put.checkpoint_id,
        parent_checkpoint_id=put.parent_checkpoint_id,
        type=put.type,
        checkpoint=put.checkpoint,
        metadata=put.metadata,
        values=[*put.values, *(v for v in first.values if v.channel == "plan")],
        pending_writes=[],
        created_at=datetime.now(UTC),
    )
    packed_put, json_put = msgspec.msgpack.encode(put), msgspec.json.encode(put)
    packed_get, json_get = msgspec.msgpack.encode(answer), msgspec.json.encode(answer)
    put_mp, put_js = msgspec.msgpack.Decoder(CheckpointPut), msgspec.json.Decoder(CheckpointPut)
    get_mp = msgspec.msgpack.Decoder(CheckpointTuple)
    get_js = msgspec.json.Decoder(CheckpointTuple)
    return {
        "serialise_put_us": _best_us(lambda: checkpoint_put(saver.serde, *arguments)),
        "put_bytes": {"msgpack": len(packed_put), "json": len(json_put)},
        "put_us": {
            "msgpack": _best_us(lambda: unstorable(put_mp.decode(msgspec.msgpack.encode(put)))),
            "json": _best_us(lambda: put_js.decode(msgspec.json.encode(put))),
        },
        "get_bytes": {"msgpack": len(packed_get), "json": len(json_get)},
        "get_us": {
            "msgpack": _best_us(lambda: get_mp.decode(msgspec.msgpack.encode(answer))),
            "json": _best_us(lambda: get_js.decode(msgspec.json.encode(answer))),
        },
    }
