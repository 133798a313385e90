"""Vector search measured in SQL: recall@10 against exact search, the plan, queries/s.

As the owner role, with the settings the service uses for k = 10
(``hnsw.ef_search = max(40, 2k)``, ``hnsw.iterative_scan = relaxed_order``).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

from bench.corpus import Vectors
from bench.processes import CpuMeter

K = 10
ANN_SETTINGS = ("SET hnsw.ef_search = 40", "SET hnsw.iterative_scan = relaxed_order")
# HNSW is the only approximate path: with plain index scans off the planner must
# scan (or, filtered, bitmap-scan the exact org_id B-tree) and sort every row.
EXACT_SETTINGS = ("SET enable_indexscan = off",)
UNFILTERED = f"SELECT id FROM embedding ORDER BY embedding <=> $1 LIMIT {K}"
FILTERED = f"SELECT id FROM embedding WHERE org_id = $2 ORDER BY embedding <=> $1 LIMIT {K}"
_VECTOR_LITERAL = re.compile(r"'\[[^\]]*\]'::vector")
_UUID_LITERAL = re.compile(r"'[0-9a-f-]{36}'::uuid")


@dataclass(frozen=True, slots=True)
class Throughput:
    queries: int
    seconds: float
    p50_ms: float
    p99_ms: float
    concurrency: int
    round_trips: int  # the statements this client sent (one per query, counted)
    client_cpu_ms: float | None  # CPU per query: this process's
    postgres_cpu_ms: float | None  # and the backends' that served it

    @property
    def qps(self) -> float:
        return self.queries / self.seconds

    @property
    def round_trips_per_query(self) -> float:
        return self.round_trips / self.queries


def _setup(settings: tuple[str, ...]) -> Callable[[asyncpg.Connection], Awaitable[None]]:
    async def setup(conn: asyncpg.Connection) -> None:
        await register_vector(conn)
        for statement in settings:
            await conn.execute(statement)

    return setup


async def _connections(dsn: str, settings: tuple[str, ...], count: int) -> list[asyncpg.Connection]:
    """Connections of our own, held for the whole measurement: an asyncpg pool would
    RESET ALL on every release, and the settings with it."""
    connections = [await asyncpg.connect(dsn) for _ in range(count)]
    for conn in connections:
        await _setup(settings)(conn)
    return connections


async def _close(connections: list[asyncpg.Connection]) -> None:
    await asyncio.gather(*(conn.close() for conn in connections))


def _query(org_id: uuid.UUID | None) -> tuple[str, tuple[uuid.UUID, ...]]:
    return (UNFILTERED, ()) if org_id is None else (FILTERED, (org_id,))


async def nearest(
    dsn: str, queries: Vectors, org_id: uuid.UUID | None, *, exact: bool
) -> list[set[uuid.UUID]]:
    """The ids of the top K chunks for each query, by HNSW or exactly (two connections)."""
    statement, extra = _query(org_id)
    connections = await _connections(dsn, EXACT_SETTINGS if exact else ANN_SETTINGS, 2)
    found: list[set[uuid.UUID]] = [set() for _ in queries]
    pending = iter(range(len(queries)))  # shared: each query is taken by one worker

    async def worker(conn: asyncpg.Connection) -> None:
        for index in pending:
            rows = await conn.fetch(statement, queries[index], *extra)
            found[index] = {row["id"] for row in rows}

    try:
        await asyncio.gather(*(worker(conn) for conn in connections))
    finally:
        await _close(connections)
    return found


def recall(found: list[set[uuid.UUID]], truth: list[set[uuid.UUID]]) -> float:
    if not all(truth):
        raise ValueError("exact search found no rows for some query")
    return float(np.mean([len(f & t) / len(t) for f, t in zip(found, truth, strict=True)]))


async def filtered_plan(dsn: str, query: np.ndarray, org_id: uuid.UUID) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        await _setup(ANN_SETTINGS)(conn)
        rows = await conn.fetch(f"EXPLAIN (COSTS OFF) {FILTERED}", query, org_id)
    finally:
        await conn.close()
    # EXPLAIN shows the parameters' values: put the placeholders back.
    return [_UUID_LITERAL.sub("$2", _VECTOR_LITERAL.sub("$1", row[0])).rstrip() for row in rows]


async def throughput(
    dsn: str,
    queries: Vectors,
    org_id: uuid.UUID | None,
    seconds: float,
    *,
    concurrency: int = 10,
    cpu: CpuMeter | None = None,
) -> Throughput:
    """Queries/s of the HNSW query, ``concurrency`` connections each with one query in flight."""
    statement, extra = _query(org_id)
    connections = await _connections(dsn, ANN_SETTINGS, concurrency)
    latencies: list[float] = []
    round_trips = 0
    try:
        # Between connect and close: the backends' CPU leaves with them.
        before = cpu.snapshot() if cpu else None
        started = time.perf_counter()
        deadline = started + seconds

        async def worker(conn: asyncpg.Connection, first: int) -> None:
            nonlocal round_trips
            index = first
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                round_trips += 1
                await conn.fetch(statement, queries[index % len(queries)], *extra)
                latencies.append(time.perf_counter() - began)
                index += concurrency

        await asyncio.gather(*(worker(conn, n) for n, conn in enumerate(connections)))
        elapsed = time.perf_counter() - started
        spent = CpuMeter.spent(before, cpu.snapshot()) if cpu and before else None
    finally:
        await _close(connections)
    p50, p99 = np.percentile(np.array(latencies) * 1000.0, [50, 99])
    per_query = 1000.0 / len(latencies)
    return Throughput(
        len(latencies),
        elapsed,
        float(p50),
        float(p99),
        concurrency,
        round_trips,
        client_cpu_ms=spent[0] * per_query if spent else None,
        postgres_cpu_ms=spent[1] * per_query if spent else None,
    )


async def server_versions(dsn: str) -> tuple[str, str]:
    """PostgreSQL's ``server_version`` and pgvector's extension version."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT current_setting('server_version') AS postgres,"
            " (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector"
        )
        assert row is not None
        return str(row["postgres"]), str(row["pgvector"])
    finally:
        await conn.close()
