"""Knowledge ingest and retrieval: vector, full-text and hybrid search."""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.db.models import Embedding, KnowledgeItem, new_id
from tests.support.database import TEST_EMBEDDING_DIM as DIM
from tests.support.http import assert_problem
from tests.support.rows import make_destination
from tests.support.tenants import Account, Tenant


def axis(i: int, scale: float = 1.0) -> list[float]:
    """A unit vector along axis ``i`` (scaled)."""
    return [scale if n == i else 0.0 for n in range(DIM)]


def blend(weights: dict[int, float]) -> list[float]:
    return [weights.get(n, 0.0) for n in range(DIM)]


async def ingest(client: httpx.AsyncClient, account: Account, **fields: Any) -> httpx.Response:
    body = {"source": "guides/dahab.md", "title": "Dahab", "body": f"text {uuid.uuid4()}"}
    return await client.post("/v1/knowledge", json=body | fields, headers=account.headers)


async def search(
    client: httpx.AsyncClient, account: Account, **fields: Any
) -> list[dict[str, Any]]:
    response = await client.post("/v1/knowledge/search", json=fields, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


async def test_ingest_with_chunks(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await ingest(
        client,
        tenant.member,
        metadata={"lang": "en"},
        chunks=[
            {"text": "The Blue Hole is deep.", "vector": axis(0), "model": "m1"},
            {"text": "The Canyon is narrow."},
        ],
    )
    assert response.status_code == 201
    item = response.json()
    assert response.headers["location"] == f"/v1/knowledge/{item['id']}"
    assert [(c["chunk_index"], c["text"], c["model"], c["has_vector"]) for c in item["chunks"]] == [
        (0, "The Blue Hole is deep.", "m1", True),
        (1, "The Canyon is narrow.", None, False),
    ]
    assert all(
        set(chunk) == {"id", "chunk_index", "text", "model", "has_vector"}
        for chunk in item["chunks"]
    )
    assert len(item["content_hash"]) == 64
    fetched = await client.get(response.headers["location"], headers=tenant.admin.headers)
    assert fetched.json() == item


async def test_without_chunks_the_body_is_one_text_chunk(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    item = (await ingest(client, tenant.member, body="Shore diving at Lighthouse reef.")).json()
    assert [(c["text"], c["has_vector"]) for c in item["chunks"]] == [
        ("Shore diving at Lighthouse reef.", False)
    ]


async def test_the_same_content_answers_the_stored_item(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    first = await ingest(client, tenant.member, body="Same words.")
    again = await ingest(client, tenant.admin, body="Same words.", title="Another title")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    elsewhere = await ingest(client, other_tenant.member, body="Same words.")
    assert elsewhere.status_code == 201


@pytest.mark.parametrize(
    ("vector", "pointer", "detail"),
    [
        (",".join(["1.0"] * (DIM - 1)), "/chunks/1/vector", f"expected {DIM} dimensions"),
        (",".join(["0.0"] * DIM), "/chunks/1/vector", "all-zero"),
        # Out of a double's range: the decoder refuses the number itself.
        (",".join(["1e400"] + ["0.0"] * (DIM - 1)), "/chunks/1/vector/0", "out of range"),
    ],
)
async def test_unusable_chunk_vectors_are_422(
    client: httpx.AsyncClient, tenant: Tenant, vector: str, pointer: str, detail: str
) -> None:
    good = ",".join(map(str, axis(1)))
    raw = (
        '{"source": "s", "title": "t", "body": "b", "chunks": ['
        f'{{"text": "ok", "vector": [{good}]}}, {{"text": "x", "vector": [{vector}]}}]}}'
    )
    response = await client.post("/v1/knowledge", content=raw, headers=tenant.member.headers)
    body = assert_problem(response, 422, "/problems/validation")
    assert body["errors"][0]["pointer"] == pointer
    assert detail in body["errors"][0]["detail"]


async def test_a_foreign_destination_is_422(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    foreign = await make_destination(owner_engine, other_tenant.org_id)
    body = assert_problem(await ingest(client, tenant.member, destination_id=foreign), 422)
    assert body["errors"][0]["pointer"] == "/destination_id"


async def test_delete_removes_item_and_chunks(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = (await ingest(client, tenant.member, body="Gone soon: ephemeral.")).headers["location"]
    assert (await client.delete(url, headers=tenant.member.headers)).status_code == 204
    assert_problem(await client.get(url, headers=tenant.member.headers), 404)
    assert_problem(await client.delete(url, headers=tenant.member.headers), 404)
    assert await search(client, tenant.member, query_text="ephemeral") == []


async def test_another_orgs_item_is_not_found(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    url = (await ingest(client, tenant.member)).headers["location"]
    assert_problem(await client.get(url, headers=other_tenant.member.headers), 404)
    assert_problem(await client.delete(url, headers=other_tenant.member.headers), 404)


async def test_vector_search_puts_the_exact_nearest_first(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    chunks = [{"text": f"chunk {n}", "vector": axis(n)} for n in range(6)]
    chunks.append({"text": "near axis 2", "vector": blend({2: 1.0, 3: 0.3})})
    await ingest(client, tenant.member, chunks=chunks)
    results = await search(client, tenant.member, query_vector=blend({2: 1.0, 3: 0.1}), k=3)
    assert [r["chunk_text"] for r in results] == ["chunk 2", "near axis 2", "chunk 3"]
    expected = 1.0 / math.sqrt(1.01)
    assert results[0]["score"] == pytest.approx(expected, abs=1e-6)
    assert results[0]["title"] == "Dahab"
    assert results[0]["source"] == "guides/dahab.md"
    assert results[0]["score"] >= results[1]["score"] >= results[2]["score"]


async def test_min_similarity_filters_after_the_top_k(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await ingest(
        client,
        tenant.member,
        chunks=[{"text": f"c{n}", "vector": axis(n)} for n in range(4)]
        + [{"text": "close", "vector": blend({0: 1.0, 1: 0.1})}],
    )
    results = await search(client, tenant.member, query_vector=axis(0), k=3, min_similarity=0.5)
    assert [r["chunk_text"] for r in results] == ["c0", "close"]


async def test_a_small_tenant_among_a_crowd_still_gets_k_results(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    """The other org holds 99% of the rows, all nearer the query than ours."""
    crowd_item = new_id()
    async with owner_engine.begin() as conn:
        await conn.execute(
            insert(KnowledgeItem).values(
                org_id=other_tenant.org_id,
                id=crowd_item,
                source="crowd",
                title="Crowd",
                body="crowd",
                content_hash=crowd_item.bytes * 2,
            )
        )
        await conn.execute(
            insert(Embedding),
            [
                {
                    "org_id": other_tenant.org_id,
                    "id": new_id(),
                    "item_id": crowd_item,
                    "chunk_index": n,
                    "chunk_text": f"crowd {n}",
                    "embedding": blend({0: 1.0, 1 + n % (DIM - 1): 0.01 * (1 + n % 7)}),
                }
                for n in range(1500)
            ],
        )
    ours = [
        {"text": f"ours {n}", "vector": blend({0: 0.3, 1 + n % (DIM - 1): 1.0})} for n in range(15)
    ]
    await ingest(client, tenant.member, chunks=ours)
    results = await search(client, tenant.member, query_vector=axis(0), k=10)
    assert len(results) == 10
    assert all(r["chunk_text"].startswith("ours ") for r in results)


async def test_text_search_finds_a_rare_word(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await ingest(
        client,
        tenant.member,
        chunks=[{"text": f"Reef notes, page {n}."} for n in range(20)]
        + [{"text": "Watch for the elusive frogfish near the jetty."}],
    )
    results = await search(client, tenant.member, query_text="frogfish")
    assert [r["chunk_text"] for r in results] == ["Watch for the elusive frogfish near the jetty."]
    assert results[0]["score"] > 0
    assert await search(client, tenant.member, query_text="submarine") == []


async def test_repeats_drop_out_and_websearch_syntax_stays(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await ingest(
        client,
        tenant.member,
        chunks=[
            {"text": "A manta ray glides over the reef."},
            {"text": "The ray and the manta never met."},
            {"text": "Manta season is winter."},
            {"text": "Whale sharks feed at dawn."},
        ],
    )

    async def texts(query_text: str) -> set[str]:
        return {r["chunk_text"] for r in await search(client, tenant.member, query_text=query_text)}

    assert await texts("MANTA manta " * 100) == await texts("manta")
    assert await texts('"manta ray" "manta ray"') == {"A manta ray glides over the reef."}
    assert await texts("manta -winter -winter") == {
        "A manta ray glides over the reef.",
        "The ray and the manta never met.",
    }
    assert await texts("whale shark or whale shark or winter") == {
        "Whale sharks feed at dawn.",
        "Manta season is winter.",
    }


async def test_hybrid_merges_both_legs(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await ingest(
        client,
        tenant.member,
        chunks=[
            {"text": "Mantas gather at the cleaning station.", "vector": axis(4)},
            {"text": "Mantas are rare in winter.", "vector": axis(9)},
            {"text": "Nothing about rays here.", "vector": blend({4: 1.0, 5: 0.05})},
        ],
    )
    results = await search(client, tenant.member, query_text="mantas", query_vector=axis(4), k=3)
    texts = [r["chunk_text"] for r in results]
    # In both legs first: top. Vector-only and text-only chunks both make it.
    assert texts[0] == "Mantas gather at the cleaning station."
    assert set(texts[1:]) == {"Mantas are rare in winter.", "Nothing about rays here."}
    assert results[0]["score"] == pytest.approx(2 / 61)


async def test_destination_and_model_filters(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    dahab = await make_destination(owner_engine, tenant.org_id)
    await ingest(
        client,
        tenant.member,
        destination_id=dahab,
        chunks=[{"text": "dahab reef", "vector": axis(6), "model": "m1"}],
    )
    await ingest(
        client, tenant.member, chunks=[{"text": "elsewhere reef", "vector": axis(6), "model": "m2"}]
    )
    in_dahab = await search(client, tenant.member, query_text="reef", destination_id=dahab)
    assert [r["chunk_text"] for r in in_dahab] == ["dahab reef"]
    by_model = await search(client, tenant.member, query_vector=axis(6), model="m2")
    assert [r["chunk_text"] for r in by_model] == ["elsewhere reef"]


async def test_search_never_crosses_orgs(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await ingest(
        client, other_tenant.member, chunks=[{"text": "secret nudibranch", "vector": axis(7)}]
    )
    assert await search(client, tenant.member, query_text="nudibranch") == []
    assert await search(client, tenant.member, query_vector=axis(7)) == []


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, None),
        ({"query_vector": [1.0, 2.0]}, "/query_vector"),
        ({"query_vector": [0.0] * DIM}, "/query_vector"),
        ({"query_text": "x", "k": 0}, "/k"),
        ({"query_text": "x", "k": 101}, "/k"),
        ({"query_text": ""}, "/query_text"),
        ({"query_text": "x", "min_similarity": 2}, "/min_similarity"),
        ({"query_text": " ".join(f"w{n}" for n in range(33))}, "/query_text"),
    ],
)
async def test_bad_searches_are_422(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], pointer: str | None
) -> None:
    response = await client.post("/v1/knowledge/search", json=body, headers=tenant.member.headers)
    problem = assert_problem(response, 422)
    if pointer is not None:
        assert problem["errors"][0]["pointer"] == pointer


async def test_vectors_of_any_magnitude_compare_by_direction(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """pgvector computes in single precision: vectors are stored at unit length."""
    await ingest(
        client,
        tenant.member,
        chunks=[
            {"text": "tiny", "vector": axis(0, 1e-46)},
            {"text": "huge", "vector": axis(1, 1e30)},
        ],
    )
    tiny = await search(client, tenant.member, query_vector=axis(0, 1e-40), k=1)
    huge = await search(client, tenant.member, query_vector=axis(1, 3e19), k=1)
    assert [(r["chunk_text"], r["score"]) for r in tiny] == [("tiny", pytest.approx(1.0))]
    assert [(r["chunk_text"], r["score"]) for r in huge] == [("huge", pytest.approx(1.0))]


def round_trips(caplog: pytest.LogCaptureFixture) -> list[int]:
    """The database round trips of each request since the last call, from the access log."""
    counts = [r.__dict__["db_round_trips"] for r in caplog.records if r.name == "itinera.access"]
    caplog.clear()
    return counts


async def test_an_ingest_and_each_search_are_one_statement(
    client: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """Opening the transaction (with the HNSW settings), the statement, the commit."""
    many = [{"text": f"reef chunk {n}", "vector": axis(n % DIM)} for n in range(40)]
    caplog.set_level(logging.INFO, logger="itinera.access")
    caplog.clear()
    assert (await ingest(client, tenant.member, chunks=many)).status_code == 201
    assert (await ingest(client, tenant.member, chunks=[{"text": "reef"}])).status_code == 201
    assert round_trips(caplog) == [3, 3]
    for fields in (
        {"query_vector": axis(1)},
        {"query_vector": axis(1), "model": "m", "min_similarity": 0.1},
        {"query_text": "reef"},
        {"query_text": "reef", "query_vector": axis(1), "destination_id": str(uuid.uuid4())},
    ):
        await search(client, tenant.member, **fields)
        assert round_trips(caplog) == [3], fields
