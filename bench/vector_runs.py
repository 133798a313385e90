"""The vector-search part of a run: the corpus, recall@10, the plan, and queries/s."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import api, corpus, search
from bench.corpus import Vectors
from bench.measure import LoadPlan
from bench.report import Row
from bench.stack import Stack
from itinera.cli import owner_unit_of_work
from itinera.domain.orgs.repository import OrgRepository
from itinera.domain.users.repository import UserRepository
from itinera.security.passwords import PasswordHasher
from itinera.settings import Settings

ORGS = 10
QUERIES = 200
SEARCH_PASSWORD = "bench-search-password"
# The API's search against the same query on the driver (the SQL (b) row):
# its queries/s over SQL's, at least; and its p99 within this many times its p50.
SEARCH_RATIO_TARGET = 0.6
SEARCH_P99_OVER_P50 = 2.0
SQL_FILTERED = "SQL (b) WHERE org_id = $2"


@dataclass(slots=True)
class SearchOutcome:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    corpus: SearchCorpus | None = None


@dataclass(frozen=True, slots=True)
class SearchCorpus:
    """What later runs over the same corpus measure against: the query vectors, the org
    searched through the API (``org_ids[0]``) with its member's login (org slug, email,
    password), and the exact top 10 of each query (chunk ids) in that org and in the
    whole corpus."""

    queries: Vectors
    org_ids: list[uuid.UUID]
    member: tuple[str, str, str]
    exact_org: list[set[uuid.UUID]]
    exact_all: list[set[uuid.UUID]]


def _slug(n: int) -> str:
    return f"bench-{n:02d}"


def _email(n: int) -> str:
    return f"search@{_slug(n)}.example"


async def create_orgs(owner_url: str) -> list[uuid.UUID]:
    """Ten orgs with one member each, through the project's own repositories, as the owner."""
    settings = Settings(admin_database_url=owner_url, database_url=owner_url)
    password_hash = await PasswordHasher().hash(SEARCH_PASSWORD)
    org_ids = []
    for n in range(ORGS):
        # A unit of work serves one tenant: one transaction per org.
        async with owner_unit_of_work(settings) as uow:
            org = await OrgRepository(uow).create(_slug(n), f"Bench org {n}")
            await uow.set_tenant(org.id)
            await UserRepository(uow).create(_email(n), password_hash, "member")
            await uow.commit()
        org_ids.append(org.id)
    return org_ids


def _body(vector: Any) -> bytes:
    # %.9g round-trips float32: the service sees exactly the vectors SQL saw.
    numbers = ",".join(f"{float(x):.9g}" for x in vector)
    return f'{{"query_vector":[{numbers}],"k":{search.K}}}'.encode()


def _api_nearest(client: httpx.Client, token: str, bodies: list[bytes]) -> list[set[uuid.UUID]]:
    found = []
    for body in bodies:
        response = client.post(
            "/v1/knowledge/search",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response.raise_for_status()
        found.append({uuid.UUID(hit["chunk_id"]) for hit in response.json()["results"]})
    return found


def measure_search(
    stack: Stack, client: httpx.Client, plan: LoadPlan, chunks: int, out_dir: Path
) -> SearchOutcome:
    dsn = stack.owner_dsn
    org_ids = asyncio.run(create_orgs(stack.owner_url))
    tenant = org_ids[0]
    vectors: Vectors = corpus.chunk_vectors(chunks)
    queries: Vectors = corpus.query_vectors(QUERIES)
    print(f"  loading {chunks} chunks with COPY, then building the HNSW index", flush=True)
    load = asyncio.run(corpus.load(dsn, org_ids, vectors))
    print(
        f"  loaded in {load.load_seconds:.1f} s, HNSW built in {load.index_seconds:.1f} s,"
        f" VACUUM ANALYZE {load.vacuum_seconds:.1f} s; recall against exact search",
        flush=True,
    )
    exact_all = asyncio.run(search.nearest(dsn, queries, None, exact=True))
    hnsw_all = asyncio.run(search.nearest(dsn, queries, None, exact=False))
    exact_org = asyncio.run(search.nearest(dsn, queries, tenant, exact=True))
    hnsw_org = asyncio.run(search.nearest(dsn, queries, tenant, exact=False))
    filtered_plan = asyncio.run(search.filtered_plan(dsn, queries[0], tenant))
    postgres_version, pgvector_version = asyncio.run(search.server_versions(dsn))

    session = api.login(client, _slug(0), _email(0), SEARCH_PASSWORD)
    bodies = [_body(query) for query in queries]
    bodies_file = out_dir / "search-bodies.jsonl"
    bodies_file.write_bytes(b"\n".join(bodies) + b"\n")
    api_found = _api_nearest(client, session.token, bodies)
    url = f"{stack.service_url}/v1/knowledge/search"
    api_measured = plan.run(
        "POST /v1/knowledge/search",
        url,
        token=session.token,
        bodies=bodies_file,
        cpu=stack.cpu_meter(stack.service),
        counted=api.RoundTripMeter(stack.service_url, "POST", "/v1/knowledge/search"),
    )
    api_run = api_measured.wrk
    print(f"  SQL: {plan.seconds:g} s unfiltered, {plan.seconds:g} s filtered", flush=True)
    here = stack.cpu_meter(None)
    sql_all = asyncio.run(search.throughput(dsn, queries, None, plan.seconds, cpu=here))
    sql_org = asyncio.run(search.throughput(dsn, queries, tenant, plan.seconds, cpu=here))

    per_org = chunks // ORGS
    counted = api_measured.round_trips
    outcome = SearchOutcome()
    outcome.rows = [
        Row(
            name="API POST /v1/knowledge/search, 1 org (10 %)",
            rate=api_run.rps,
            p50_ms=api_run.p50_ms,
            p99_ms=api_run.p99_ms,
            non_2xx=api_run.non_2xx,
            socket_errors=api_run.socket_errors,
            app_cpu_ms=api_measured.app_cpu_ms,
            postgres_cpu_ms=api_measured.postgres_cpu_ms,
            ceiling=SQL_FILTERED,
            ratio=api_run.rps / sql_org.qps,
            min_ratio=SEARCH_RATIO_TARGET,
            max_p99_over_p50=SEARCH_P99_OVER_P50,
            recall_at_10=search.recall(api_found, exact_org),
            db_round_trips=counted.database if counted else None,
            redis_round_trips=counted.redis if counted else None,
            counted_requests=counted.requests if counted else None,
        ),
        Row(
            name=f"  {SQL_FILTERED} (10 %)",
            rate=sql_org.qps,
            p50_ms=sql_org.p50_ms,
            p99_ms=sql_org.p99_ms,
            app_cpu_ms=sql_org.client_cpu_ms,
            postgres_cpu_ms=sql_org.postgres_cpu_ms,
            recall_at_10=search.recall(hnsw_org, exact_org),
            db_round_trips=sql_org.round_trips_per_query,
            counted_requests=sql_org.queries,
        ),
        Row(
            name="  SQL (a) no tenant filter",
            rate=sql_all.qps,
            p50_ms=sql_all.p50_ms,
            p99_ms=sql_all.p99_ms,
            app_cpu_ms=sql_all.client_cpu_ms,
            postgres_cpu_ms=sql_all.postgres_cpu_ms,
            recall_at_10=search.recall(hnsw_all, exact_all),
            db_round_trips=sql_all.round_trips_per_query,
            counted_requests=sql_all.queries,
        ),
    ]
    uses_hnsw = any(corpus.HNSW_INDEX in line for line in filtered_plan)
    outcome.notes = [
        f"corpus: {load.chunks:,} chunks of {corpus.DIM}-dim vectors ({load.items:,} knowledge"
        f" items) in {ORGS} orgs x {per_org:,} (orgs {_slug(0)}..{_slug(ORGS - 1)}, one member"
        f" each, made as the owner through the project's repositories); {corpus.describe()}",
        "  loaded directly as itinera_owner, not through the API: COPY into a temporary table,"
        " then INSERT ... SELECT (COPY FROM refuses tables under forced RLS); HNSW index"
        f" dropped first and re-created after ({corpus.HNSW_DDL}; default m = 16,"
        f" ef_construction = 64; maintenance_work_mem = {corpus.BUILD_MEMORY}):"
        f" load {load.load_seconds:.1f} s, HNSW build {load.index_seconds:.1f} s,"
        f" VACUUM ANALYZE {load.vacuum_seconds:.1f} s",
        f"  PostgreSQL {postgres_version}, pgvector {pgvector_version}; {QUERIES} query vectors"
        " drawn like the data; every query run: hnsw.ef_search = 40 (= max(40, 2k)),"
        " hnsw.iterative_scan = relaxed_order, as the service sets them",
        "  recall@10 = |HNSW top 10 & exact top 10| / 10, averaged; exact = the same SQL with"
        " enable_indexscan = off (a sequential scan, or filtered a bitmap scan of the exact"
        " org_id B-tree, and a sort of every candidate by distance)",
        "  API row: wrk (64 connections) as a member of one org, rotating the query bodies;"
        " its recall compares the API's chunk ids with the exact top 10 of that org; its ratio"
        f" = its q/s / SQL (b)'s, the same query on the driver (target: ratio >="
        f" {SEARCH_RATIO_TARGET:g}, p99 <= {SEARCH_P99_OVER_P50:g} x p50)",
        "  SQL rows: measured directly against PostgreSQL as the owner, from"
        f" {sql_all.concurrency} asyncpg connections in this process, one query in flight on"
        " each; (a) is SQL-level only because every API search is tenant-scoped; (b) is the"
        " service's filter",
        "  plan for (b): "
        + ("HNSW index scan" if uses_hnsw else "no HNSW index scan (exact path)")
        + " -- "
        + " / ".join(line.strip() for line in filtered_plan),
    ]
    member = (_slug(0), _email(0), SEARCH_PASSWORD)
    outcome.corpus = SearchCorpus(queries, org_ids, member, exact_org, exact_all)
    outcome.facts = {
        "dim": corpus.DIM,
        "chunks": load.chunks,
        "items": load.items,
        "orgs": ORGS,
        "corpus": corpus.describe(),
        "queries": QUERIES,
        "load_seconds": round(load.load_seconds, 2),
        "hnsw_build_seconds": round(load.index_seconds, 2),
        "vacuum_analyze_seconds": round(load.vacuum_seconds, 2),
        "maintenance_work_mem": corpus.BUILD_MEMORY,
        "filtered_plan": filtered_plan,
        "filtered_plan_uses_hnsw": uses_hnsw,
        "postgres": postgres_version,
        "pgvector": pgvector_version,
    }
    return outcome
