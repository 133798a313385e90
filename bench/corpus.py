"""The synthetic corpus: clustered vectors, loaded straight into PostgreSQL as the owner.

Vectors: ``CENTRES`` random Gaussian centres in ``DIM`` dimensions (normalised);
each point is a centre chosen uniformly at random plus Gaussian noise of
standard deviation ``SIGMA`` per component, normalised again. Queries are
drawn the same way from the same centres with their own seed. Every org gets
the same number of chunks, and every cluster is spread over all orgs, so an
org filter is independent of where a vector lies.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np
import uuid_utils.compat
from numpy.typing import NDArray
from pgvector.asyncpg import register_vector

DIM = 384
CENTRES = 200
SIGMA = 0.03
SEED = 20_251_123
CHUNKS_PER_ITEM = 10
MODEL = "bench-synthetic-384"
HNSW_INDEX = "ix_embedding_embedding_hnsw"
# Exactly the definition the migration creates (default m = 16, ef_construction = 64).
HNSW_DDL = f"CREATE INDEX {HNSW_INDEX} ON embedding USING hnsw (embedding vector_cosine_ops)"
# The build keeps the whole graph in memory when it fits (100k x 384 needs ~200 MB).
BUILD_MEMORY = "1GB"

Vectors = NDArray[np.float32]


def describe() -> str:
    return (
        f"{CENTRES} random Gaussian centres in {DIM} dimensions, normalised; each point = a"
        f" uniformly chosen centre + Gaussian noise with sigma {SIGMA} per component,"
        f" normalised (seeded RNG, seed {SEED}; queries: same recipe, seed {SEED + 1})"
    )


def _normalised(points: NDArray[np.float64]) -> Vectors:
    unit: Vectors = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
    return unit


def _centres() -> NDArray[np.float64]:
    rng = np.random.default_rng(SEED)
    return _normalised(rng.standard_normal((CENTRES, DIM))).astype(np.float64)


def _draw(rng: np.random.Generator, count: int) -> Vectors:
    centres = _centres()
    labels = rng.integers(0, CENTRES, count)
    return _normalised(centres[labels] + rng.normal(0.0, SIGMA, (count, DIM)))


def chunk_vectors(count: int) -> Vectors:
    # A stream of its own, independent of the centres' and the queries'.
    return _draw(np.random.default_rng([SEED, 1]), count)


def query_vectors(count: int) -> Vectors:
    return _draw(np.random.default_rng(SEED + 1), count)


@dataclass(frozen=True, slots=True)
class LoadReport:
    chunks: int
    items: int
    load_seconds: float
    index_seconds: float
    vacuum_seconds: float


ITEM_COLUMNS = ("org_id", "id", "source", "title", "body", "content_hash")
CHUNK_COLUMNS = ("org_id", "id", "item_id", "chunk_index", "chunk_text", "model", "embedding")


async def load(dsn: str, orgs: Sequence[uuid.UUID], vectors: Vectors) -> LoadReport:
    """Chunk ``i`` goes to ``orgs[i // per_org]``; ten chunks per knowledge item."""
    per_org = len(vectors) // len(orgs)
    items: list[tuple[Any, ...]] = []
    chunks: list[tuple[Any, ...]] = []
    for org_number, org_id in enumerate(orgs):
        for first in range(org_number * per_org, (org_number + 1) * per_org, CHUNKS_PER_ITEM):
            item_id = uuid_utils.compat.uuid7()
            body = f"synthetic knowledge item {first // CHUNKS_PER_ITEM}"
            digest = hashlib.sha256(body.encode()).digest()
            items.append((org_id, item_id, f"bench:{first}", body, body, digest))
            for index in range(min(CHUNKS_PER_ITEM, per_org * (org_number + 1) - first)):
                row = first + index
                text = f"chunk {index} of item {first // CHUNKS_PER_ITEM}"
                chunks.append(
                    (org_id, uuid_utils.compat.uuid7(), item_id, index, text, MODEL, vectors[row])
                )

    conn = await asyncpg.connect(dsn)
    try:
        await register_vector(conn)
        started = time.perf_counter()
        # Building the graph once over all rows is far cheaper than 100k inserts into it.
        await conn.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
        async with conn.transaction():
            await _copy_via_staging(conn, "knowledge_item", ITEM_COLUMNS, items)
            await _copy_via_staging(conn, "embedding", CHUNK_COLUMNS, chunks)
        loaded = time.perf_counter()
        await conn.execute(f"SET maintenance_work_mem = '{BUILD_MEMORY}'")
        await conn.execute(HNSW_DDL)
        indexed = time.perf_counter()
        await conn.execute("VACUUM ANALYZE knowledge_item")
        await conn.execute("VACUUM ANALYZE embedding")
        vacuumed = time.perf_counter()
    finally:
        await conn.close()
    return LoadReport(
        chunks=len(chunks),
        items=len(items),
        load_seconds=loaded - started,
        index_seconds=indexed - loaded,
        vacuum_seconds=vacuumed - indexed,
    )


async def _copy_via_staging(
    conn: asyncpg.Connection, table: str, columns: Sequence[str], records: list[tuple[Any, ...]]
) -> None:
    """COPY into a temporary table, then INSERT ... SELECT.

    COPY FROM refuses tables under Row-Level Security, and FORCE puts even the
    owner under it; a temporary table has no policies, and the INSERT passes
    the owner's allow-all policy.
    """
    names = ", ".join(columns)
    stage = f"stage_{table}"
    await conn.execute(
        f"CREATE TEMPORARY TABLE {stage} ON COMMIT DROP AS SELECT {names} FROM {table} WITH NO DATA"
    )
    await conn.copy_records_to_table(stage, records=records, columns=list(columns))
    await conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage}")
