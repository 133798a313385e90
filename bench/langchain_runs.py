"""LangChain similarity search: ``ItineraVectorStore`` through the service against
langchain-postgres's ``PGVectorStore`` on the same PostgreSQL and the same corpus.

Both search by vector (no embedding model in the loop), k = 10, ``CONCURRENCY``
searches in flight from this process, each worker taking the bench's query
vectors in turn. The store goes through the service as the member of the
org the API row searches, with an API key, and then once more with an access
token: the difference is what a key costs on the request path. The peer
queries a table of its own made by ``PGEngine.ainit_vectorstore_table`` and
filled with every chunk of the corpus (same ids, same vectors), indexed by
its own ``aapply_vector_index(HNSWIndex())`` (cosine, m = 16,
ef_construction = 64, as the service's index), queried with pgvector's default
``hnsw.ef_search`` of 40, the service's for k = 10.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version

import asyncpg
import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_postgres import PGEngine, PGVectorStore
from langchain_postgres.v2.indexes import HNSWIndex
from sqlalchemy.ext.asyncio import create_async_engine

from bench import corpus, search
from bench.api import RoundTripMeter, RoundTrips
from bench.processes import CpuMeter
from bench.report import Row
from bench.stack import Stack
from bench.vector_runs import SearchCorpus, SearchOutcome
from itinera.cli import owner_unit_of_work
from itinera.db.bootstrap import OWNER_ROLE
from itinera.domain.api_keys.repository import ApiKeyRepository
from itinera.domain.users.repository import UserRepository
from itinera.embedded import DATABASE_NAME
from itinera.security.tokens import new_api_key, token_hash
from itinera.settings import Settings
from itinera_client import ItineraClient
from itinera_client.errors import ItineraError
from itinera_client.langchain import ItineraVectorStore

CONCURRENCY = 16
RATIO_TARGET = 1.0  # the store through HTTP at least as fast as the peer on the database
TABLE = "bench_langchain_pgvector"
PEER = "PGVectorStore (langchain-postgres)"
STORE = "ItineraVectorStore"
# The HNSW build keeps its graph in memory, as the service's index was built (corpus.py).
LOAD_OPTIONS = f"-c maintenance_work_mem={corpus.BUILD_MEMORY}"

Search = Callable[[list[float]], Awaitable[list[Document]]]


@dataclass(frozen=True, slots=True)
class Rate:
    searches: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # searches the service refused (after the client's own retries)
    service_cpu_ms: float | None  # CPU per search: the service's (None: no service)
    client_cpu_ms: float  # this process's: the store and its client, or the peer
    postgres_cpu_ms: float  # all PostgreSQL backends'
    round_trips: RoundTrips | None  # as the service counted them

    @property
    def qps(self) -> float:
        return self.searches / self.seconds


async def _drive(search_one: Search, queries: list[list[float]], seconds: float) -> Rate:
    """``CONCURRENCY`` workers searching until ``seconds`` are up; no CPU or counts."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(first: int) -> None:
        nonlocal errors
        index = first
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                await search_one(queries[index % len(queries)])
            except ItineraError:
                errors += 1
            latencies.append(time.perf_counter() - began)
            index += CONCURRENCY

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    p50, p99 = np.percentile(np.array(latencies) * 1000.0, [50, 99])
    return Rate(len(latencies), elapsed, float(p50), float(p99), errors, None, 0.0, 0.0, None)


async def _measure(
    search_one: Search,
    queries: list[list[float]],
    stack: Stack,
    warmup_seconds: float,
    seconds: float,
    *,
    through_service: bool,
) -> Rate:
    """A warm-up (not reported), then the measured run with its CPU and round trips."""
    await _drive(search_one, queries, warmup_seconds)
    service = stack.cpu_meter(stack.service) if through_service else None
    here = stack.cpu_meter(None)
    counted = (
        RoundTripMeter(stack.service_url, "POST", "/v1/knowledge/search")
        if through_service
        else None
    )
    # /metrics is read outside the CPU window: a read costs the service some CPU.
    counts_before = await asyncio.to_thread(counted.snapshot) if counted else None
    service_before = service.snapshot() if service else None
    here_before = here.snapshot()
    rate = await _drive(search_one, queries, seconds)
    here_after = here.snapshot()
    service_after = service.snapshot() if service else None
    round_trips = None
    if counted is not None and counts_before is not None:
        counts_after = await asyncio.to_thread(counted.snapshot)
        round_trips = RoundTripMeter.per_request(counts_before, counts_after)
    per_search = 1000.0 / rate.searches
    client_cpu, postgres_cpu = CpuMeter.spent(here_before, here_after)
    service_cpu = None
    if service_before is not None and service_after is not None:
        service_cpu = CpuMeter.spent(service_before, service_after)[0] * per_search
    return Rate(
        rate.searches,
        rate.seconds,
        rate.p50_ms,
        rate.p99_ms,
        rate.errors,
        service_cpu,
        client_cpu * per_search,
        postgres_cpu * per_search,
        round_trips,
    )


async def _api_key(owner_url: str, org_id: uuid.UUID, email: str) -> str:
    """An API key for the org's member, made as ``itinera create-api-key`` makes one."""
    settings = Settings(admin_database_url=owner_url, database_url=owner_url)
    async with owner_unit_of_work(settings) as uow:
        await uow.set_tenant(org_id)
        user = await UserRepository(uow).find_credentials(email)
        assert user is not None
        secret = new_api_key(org_id)
        await ApiKeyRepository(uow).create(user.id, "bench-langchain", token_hash(secret), None)
        await uow.commit()
    return secret


def _peer_url(stack: Stack) -> str:
    """SQLAlchemy's URL for psycopg 3, as langchain-postgres documents, as the owner over
    the embedded server's unix socket."""
    return f"postgresql+psycopg://{OWNER_ROLE}@/{DATABASE_NAME}?host={stack.postgres.socket_dir}"


@dataclass(frozen=True, slots=True)
class PeerLoad:
    rows: int
    load_seconds: float
    index_seconds: float


async def _load_peer(stack: Stack, embedding: DeterministicFakeEmbedding) -> PeerLoad:
    """The peer's table, filled with every chunk of the service's corpus, and its index."""
    engine = PGEngine.from_engine(
        create_async_engine(_peer_url(stack), connect_args={"options": LOAD_OPTIONS})
    )
    try:
        await engine.ainit_vectorstore_table(TABLE, corpus.DIM, overwrite_existing=True)
        started = time.perf_counter()
        conn = await asyncpg.connect(stack.owner_dsn)
        try:
            await conn.execute(
                f"INSERT INTO {TABLE} (langchain_id, content, embedding, langchain_metadata)"
                " SELECT id, chunk_text, embedding, '{}'::json FROM embedding"
            )
            rows = await conn.fetchval(f"SELECT count(*) FROM {TABLE}")
        finally:
            await conn.close()
        loaded = time.perf_counter()
        store = await PGVectorStore.create(engine, embedding_service=embedding, table_name=TABLE)
        await store.aapply_vector_index(HNSWIndex())
        indexed = time.perf_counter()
        conn = await asyncpg.connect(stack.owner_dsn)
        try:
            await conn.execute(f"VACUUM ANALYZE {TABLE}")
        finally:
            await conn.close()
    finally:
        await engine.close()
    return PeerLoad(int(rows), loaded - started, indexed - loaded)


async def _texts_to_ids(dsn: str, org_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """The org's chunks by text: every chunk's text is unique in the corpus, and a hit
    through the store is a Document whose text is its chunk's."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT chunk_text, id FROM embedding WHERE org_id = $1", org_id)
    finally:
        await conn.close()
    return {row["chunk_text"]: row["id"] for row in rows}


async def _found(search_one: Search, queries: list[list[float]]) -> list[list[Document]]:
    """Every query once, ``CONCURRENCY`` at a time, answers in the queries' order."""
    answers: list[list[Document]] = [[] for _ in queries]
    pending = iter(range(len(queries)))  # shared: each query is taken by one worker

    async def worker() -> None:
        for index in pending:
            answers[index] = await search_one(queries[index])

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return answers


@dataclass(slots=True)
class LangChainRuns:
    key: Rate
    token: Rate
    peer: Rate
    store_recall: float
    peer_recall: float
    load: PeerLoad


async def _run(stack: Stack, truth: SearchCorpus, warmup: float, seconds: float) -> LangChainRuns:
    # Never called: both stores are searched by vector.
    embedding = DeterministicFakeEmbedding(size=corpus.DIM)
    queries = [[float(x) for x in query] for query in truth.queries]
    tenant = truth.org_ids[0]
    slug, email, password = truth.member
    print(f"  {PEER}: its table and HNSW index over the whole corpus", flush=True)
    load = await _load_peer(stack, embedding)
    texts = await _texts_to_ids(stack.owner_dsn, tenant)
    api_key = await _api_key(stack.owner_url, tenant, email)

    async with (
        ItineraClient(stack.service_url, api_key=api_key) as keyed,
        ItineraClient(stack.service_url) as logged_in,
    ):
        await logged_in.login(slug, email, password)
        by_key = ItineraVectorStore(embedding, client=keyed)
        by_token = ItineraVectorStore(embedding, client=logged_in)

        async def store_search(vector: list[float]) -> list[Document]:
            return await by_key.asimilarity_search_by_vector(vector, k=search.K)

        async def token_search(vector: list[float]) -> list[Document]:
            return await by_token.asimilarity_search_by_vector(vector, k=search.K)

        found = await _found(store_search, queries)
        store_recall = search.recall(
            [{texts[doc.page_content] for doc in docs} for docs in found], truth.exact_org
        )
        print(f"  {STORE} with an API key: warm-up {warmup:g} s, run {seconds:g} s", flush=True)
        key = await _measure(store_search, queries, stack, warmup, seconds, through_service=True)
        print(f"  {STORE} with an access token: warm-up {warmup:g} s, run {seconds:g} s")
        token = await _measure(token_search, queries, stack, warmup, seconds, through_service=True)

    engine = PGEngine.from_engine(
        create_async_engine(_peer_url(stack), pool_size=CONCURRENCY, max_overflow=0)
    )
    try:
        peer_store = await PGVectorStore.create(
            engine, embedding_service=embedding, table_name=TABLE
        )

        async def peer_search(vector: list[float]) -> list[Document]:
            return await peer_store.asimilarity_search_by_vector(vector, k=search.K)

        found = await _found(peer_search, queries)
        peer_recall = search.recall(
            [{uuid.UUID(str(doc.id)) for doc in docs} for docs in found], truth.exact_all
        )
        print(f"  {PEER}: warm-up {warmup:g} s, run {seconds:g} s", flush=True)
        peer = await _measure(peer_search, queries, stack, warmup, seconds, through_service=False)
    finally:
        await engine.close()
    return LangChainRuns(key, token, peer, store_recall, peer_recall, load)


def measure_langchain(
    stack: Stack, outcome: SearchOutcome, warmup_seconds: float, seconds: float
) -> SearchOutcome:
    """The store (by API key, then by access token) and the peer: rows, notes, facts."""
    assert outcome.corpus is not None
    truth = outcome.corpus
    runs = asyncio.run(_run(stack, truth, warmup_seconds, seconds))
    share = len(truth.org_ids)
    peer_name = f"  {PEER}, HNSW, all orgs (100 %)"
    result = SearchOutcome()
    result.rows = [
        _row(
            f"{STORE}, API key, 1 org ({100 // share} %)",
            runs.key,
            runs.store_recall,
            ceiling=peer_name.strip(),
            ratio=runs.key.qps / runs.peer.qps,
        ),
        _row(f"  {STORE}, access token", runs.token, None),
        _row(peer_name, runs.peer, runs.peer_recall),
    ]
    result.notes = _notes(runs)
    result.facts = {
        "concurrency": CONCURRENCY,
        "peer_table": TABLE,
        "peer_rows": runs.load.rows,
        "peer_load_seconds": round(runs.load.load_seconds, 2),
        "peer_hnsw_build_seconds": round(runs.load.index_seconds, 2),
        "client_cpu_ms": {
            "api_key": runs.key.client_cpu_ms,
            "access_token": runs.token.client_cpu_ms,
            "peer": runs.peer.client_cpu_ms,
        },
    }
    return result


def _row(
    name: str,
    rate: Rate,
    recall: float | None,
    *,
    ceiling: str | None = None,
    ratio: float | None = None,
) -> Row:
    counted = rate.round_trips
    through_service = rate.service_cpu_ms is not None
    return Row(
        name=name,
        rate=rate.qps,
        p50_ms=rate.p50_ms,
        p99_ms=rate.p99_ms,
        non_2xx=rate.errors if through_service else None,
        # The service's CPU for the store; this process's for the peer, which runs here.
        app_cpu_ms=rate.service_cpu_ms if through_service else rate.client_cpu_ms,
        postgres_cpu_ms=rate.postgres_cpu_ms,
        ceiling=ceiling,
        ratio=ratio,
        min_ratio=RATIO_TARGET if ratio is not None else None,
        recall_at_10=recall,
        db_round_trips=counted.database if counted else None,
        redis_round_trips=counted.redis if counted else None,
        counted_requests=counted.requests if counted else None,
    )


def _micros(ms: float | None) -> str:
    return "-" if ms is None else f"{ms * 1000:.0f} us"


def _per(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _notes(runs: LangChainRuns) -> list[str]:
    key, token = runs.key, runs.token
    rt_key = key.round_trips
    rt_token = token.round_trips
    return [
        f"LangChain rows: {CONCURRENCY} similarity searches in flight from one asyncio loop in"
        " this process (asimilarity_search_by_vector, k = 10, the query vectors above in"
        f" turn); {STORE} over ItineraClient as the API row's org member, through the service;"
        f" the peer, {PEER} {version('langchain-postgres')} on psycopg"
        f" {version('psycopg')} (PGEngine.from_engine, pool {CONCURRENCY}), as the owner, on"
        f" a table ({TABLE}) holding all {runs.load.rows:,} chunks (same ids and vectors),"
        f" filled in {runs.load.load_seconds:.1f} s, its HNSW index (aapply_vector_index,"
        f" cosine, m = 16, ef_construction = 64) built in {runs.load.index_seconds:.1f} s;"
        f" ratio = {STORE} q/s / the peer's (target >= {RATIO_TARGET:g})",
        "  recall@10: the store's hits (Documents, matched to chunks by their unique text)"
        " against the exact top 10 of its org; the peer's (Documents, by id) against the exact"
        " top 10 of the whole corpus; app cpu: the service's for the store rows, this"
        " process's for the peer (it runs here); this process spent"
        f" {_micros(key.client_cpu_ms)} of CPU per search through the store,"
        f" {_micros(runs.peer.client_cpu_ms)} through the peer",
        "  an API key on the request path, against an access token (same searches): db round"
        f" trips {_per(rt_key.database if rt_key else None)} vs"
        f" {_per(rt_token.database if rt_token else None)}, redis"
        f" {_per(rt_key.redis if rt_key else None)} vs"
        f" {_per(rt_token.redis if rt_token else None)}; service CPU per request"
        f" {_micros(key.service_cpu_ms)} vs {_micros(token.service_cpu_ms)}; PostgreSQL"
        f" {_micros(key.postgres_cpu_ms)} vs {_micros(token.postgres_cpu_ms)}",
    ]
