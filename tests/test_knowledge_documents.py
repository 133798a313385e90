"""Knowledge as documents: client keys, upserts that replace whole, lists, and metadata
filters on search."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.db.models import Embedding
from tests.support.database import TEST_EMBEDDING_DIM as DIM
from tests.support.http import assert_problem
from tests.support.rows import make_destination
from tests.support.tenants import Account, Tenant
from tests.test_knowledge import axis, ingest, round_trips, search

BY_KEY = "/v1/knowledge/by-key"


async def put(
    client: httpx.AsyncClient, account: Account, key: str, **fields: Any
) -> httpx.Response:
    return await ingest(client, account, key=key, **fields)


async def by_key(client: httpx.AsyncClient, account: Account, key: str) -> httpx.Response:
    return await client.get(BY_KEY, params={"key": key}, headers=account.headers)


async def listed(client: httpx.AsyncClient, account: Account, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/knowledge", params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_a_new_key_is_201_and_a_known_one_replaces_the_item_whole(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await put(
        client,
        tenant.member,
        "guides/dahab.md",
        body="Lighthouse reef has seahorses.",
        metadata={"lang": "en"},
        chunks=[{"text": "Lighthouse reef seahorses."}, {"text": "Eel garden at dawn."}],
    )
    assert created.status_code == 201, created.text
    first = created.json()
    assert first["key"] == "guides/dahab.md"
    assert created.headers["location"] == f"/v1/knowledge/{first['id']}"

    replaced = await put(
        client,
        tenant.member,
        "guides/dahab.md",
        title="Dahab, revised",
        body="Canyon swim-through.",
        metadata={"lang": "de"},
        chunks=[{"text": "The Canyon swim-through.", "vector": axis(0)}],
    )
    assert replaced.status_code == 200, replaced.text
    second = replaced.json()
    assert (second["id"], second["created_at"]) == (first["id"], first["created_at"])
    assert second["updated_at"] > first["updated_at"]
    assert (second["title"], second["metadata"]) == ("Dahab, revised", {"lang": "de"})
    assert [(c["chunk_index"], c["text"], c["has_vector"]) for c in second["chunks"]] == [
        (0, "The Canyon swim-through.", True)
    ]
    assert (await by_key(client, tenant.admin, "guides/dahab.md")).json() == second
    assert await search(client, tenant.member, query_text="seahorses") == []
    assert await search(client, tenant.member, query_text="eel garden") == []
    hits = await search(client, tenant.member, query_text="canyon")
    assert [h["chunk_text"] for h in hits] == ["The Canyon swim-through."]


async def test_keyed_items_are_not_deduplicated_and_keyless_ones_still_are(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    keyless = await ingest(client, tenant.member, body="Same words.")
    again = await ingest(client, tenant.member, body="Same words.", title="Other")
    assert (keyless.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == keyless.json()["id"]
    one = await put(client, tenant.member, "a", body="Same words.")
    two = await put(client, tenant.member, "b", body="Same words.")
    assert (one.status_code, two.status_code) == (201, 201)
    ids = {keyless.json()["id"], one.json()["id"], two.json()["id"]}
    assert len(ids) == 3
    # Every item shows the SHA-256 of its body, keyed or not.
    assert {keyless.json()["content_hash"], one.json()["content_hash"]} == {
        two.json()["content_hash"]
    }
    # A keyless ingest still finds the keyless item, never a keyed one.
    assert (await ingest(client, tenant.member, body="Same words.")).json()["id"] == (
        keyless.json()["id"]
    )
    assert (await by_key(client, tenant.member, "a")).json()["content_hash"] == (
        one.json()["content_hash"]
    )


@pytest.mark.parametrize(
    "key",
    [
        "guides/red sea/dahab.md",
        "/leading/and/trailing/",
        "Tauchplätze über 30 m — 🐠",
        "a?b&c=d#e%2F+",
        " spaced ",
        "k" * 255,
        "ü" * 255,
    ],
)
async def test_any_key_of_1_to_255_characters_round_trips_exactly(
    client: httpx.AsyncClient, tenant: Tenant, key: str
) -> None:
    created = await put(client, tenant.member, key)
    assert created.status_code == 201, created.text
    assert created.json()["key"] == key
    fetched = await by_key(client, tenant.member, key)
    assert fetched.status_code == 200
    assert fetched.json()["id"] == created.json()["id"]
    assert [i["key"] for i in (await listed(client, tenant.member, key=key))["items"]] == [key]
    gone = await client.delete(BY_KEY, params={"key": key}, headers=tenant.member.headers)
    assert gone.status_code == 204
    assert_problem(await by_key(client, tenant.member, key), 404)


async def test_keys_are_matched_exactly(client: httpx.AsyncClient, tenant: Tenant) -> None:
    await put(client, tenant.member, "Docs/Dahab.md")
    # Composed "é" and "e" + combining acute are different keys.
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    await put(client, tenant.member, composed)
    for other in ("docs/dahab.md", "Docs/Dahab.md ", "Docs//Dahab.md", "Docs%2FDahab.md"):
        assert_problem(await by_key(client, tenant.member, other), 404)
    assert_problem(await by_key(client, tenant.member, decomposed), 404)
    created = await put(client, tenant.member, decomposed)
    assert created.status_code == 201


@pytest.mark.parametrize(
    ("key", "why"), [("k" * 256, "256 characters"), ("", "empty"), ("a\x00b", "NUL")]
)
async def test_unusable_keys_are_422(
    client: httpx.AsyncClient, tenant: Tenant, key: str, why: str
) -> None:
    body = assert_problem(await put(client, tenant.member, key), 422, "/problems/validation")
    assert body["errors"][0]["pointer"] == "/key", why
    for method in ("GET", "DELETE"):
        response = await client.request(
            method, BY_KEY, params={"key": key}, headers=tenant.member.headers
        )
        body = assert_problem(response, 422, "/problems/validation")
        assert body["errors"][0]["parameter"] == "key", why
    body = assert_problem(
        await client.get("/v1/knowledge", params={"key": key}, headers=tenant.member.headers), 422
    )


async def test_a_missing_key_parameter_is_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    assert_problem(await client.get(BY_KEY, headers=tenant.member.headers), 422)
    assert_problem(await client.delete(BY_KEY, headers=tenant.member.headers), 422)


async def test_keys_belong_to_their_org(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await put(client, tenant.member, "shared/name", body="Mine.")
    assert_problem(await by_key(client, other_tenant.member, "shared/name"), 404)
    response = await client.delete(
        BY_KEY, params={"key": "shared/name"}, headers=other_tenant.member.headers
    )
    assert_problem(response, 404)
    assert (await listed(client, other_tenant.member, key="shared/name"))["items"] == []
    # The same key in another org is another item, created there.
    theirs = await put(client, other_tenant.member, "shared/name", body="Theirs.")
    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine.json()["id"]
    assert (await by_key(client, tenant.member, "shared/name")).json()["body"] == "Mine."


async def test_delete_by_key_removes_the_item_and_its_chunks(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = (await put(client, tenant.member, "tmp", body="Ephemeral jellyfish bloom.")).json()
    response = await client.delete(BY_KEY, params={"key": "tmp"}, headers=tenant.member.headers)
    assert response.status_code == 204
    assert_problem(
        await client.get(f"/v1/knowledge/{created['id']}", headers=tenant.member.headers), 404
    )
    assert await search(client, tenant.member, query_text="jellyfish") == []
    again = await client.delete(BY_KEY, params={"key": "tmp"}, headers=tenant.member.headers)
    assert_problem(again, 404)
    assert (await put(client, tenant.member, "tmp")).status_code == 201


async def test_list_filters_by_source_destination_and_key_and_pages(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    destination = await make_destination(owner_engine, tenant.org_id)
    ids = []
    for n in range(5):
        fields: dict[str, Any] = {"source": "a.md" if n % 2 == 0 else "b.md"}
        if n < 3:
            fields["destination_id"] = str(destination)
        response = await put(client, tenant.member, f"doc/{n}", **fields)
        ids.append(response.json()["id"])
    keyless = (await ingest(client, tenant.member, source="a.md")).json()["id"]

    everything = await listed(client, tenant.member)
    assert [i["id"] for i in everything["items"]] == [keyless, *reversed(ids)]
    assert everything["next_cursor"] is None
    assert "chunks" not in everything["items"][0]
    assert everything["items"][0]["key"] is None

    by_source = await listed(client, tenant.member, source="a.md")
    assert [i["id"] for i in by_source["items"]] == [keyless, ids[4], ids[2], ids[0]]
    by_destination = await listed(client, tenant.member, destination_id=str(destination))
    assert [i["id"] for i in by_destination["items"]] == [ids[2], ids[1], ids[0]]
    both = await listed(client, tenant.member, source="a.md", destination_id=str(destination))
    assert [i["id"] for i in both["items"]] == [ids[2], ids[0]]
    assert [i["id"] for i in (await listed(client, tenant.member, key="doc/3"))["items"]] == [
        ids[3]
    ]
    assert (await listed(client, tenant.member, key="doc/3", source="a.md"))["items"] == []

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2, "source": "a.md"}
    while True:
        page = await listed(client, tenant.member, **params)
        seen += [i["id"] for i in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == [keyless, ids[4], ids[2], ids[0]]
    # A cursor of this list does not work on another route.
    first = await listed(client, tenant.member, limit=1)
    response = await client.get(
        "/v1/itineraries", params={"cursor": first["next_cursor"]}, headers=tenant.member.headers
    )
    assert_problem(response, 400)


async def test_search_filters_by_metadata_containment(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    metadata = {
        "lang": "en",
        "site": {"name": "Blue Hole", "depth": {"max_m": 100}},
        "tags": ["wall", "deep"],
    }
    await put(
        client,
        tenant.member,
        "deep",
        body="Reef wall.",
        metadata=metadata,
        chunks=[{"text": "Reef wall drops off.", "vector": axis(0)}],
    )
    await put(
        client,
        tenant.member,
        "shallow",
        body="Reef flat.",
        metadata={"lang": "de"},
        chunks=[{"text": "Reef flat is shallow.", "vector": axis(1)}],
    )

    def keys(results: list[dict[str, Any]]) -> list[str]:
        return [r["key"] for r in results]

    for mode in (
        {"query_text": "reef"},
        {"query_vector": axis(0)},
        {"query_text": "reef", "query_vector": axis(0)},
    ):
        assert sorted(keys(await search(client, tenant.member, **mode))) == ["deep", "shallow"]
        for contained in (
            {"lang": "en"},
            {"site": {"depth": {"max_m": 100}}},
            {"tags": ["deep"]},
            metadata,
            {},
        ):
            found = keys(await search(client, tenant.member, metadata=contained, **mode))
            expected = ["deep", "shallow"] if contained == {} else ["deep"]
            assert sorted(found) == expected, (mode, contained)
        for absent in ({"lang": "fr"}, {"site": {"depth": {"max_m": 30}}}, {"other": None}):
            assert await search(client, tenant.member, metadata=absent, **mode) == []

    hit = (await search(client, tenant.member, query_text="wall", metadata={"lang": "en"}))[0]
    assert (hit["key"], hit["metadata"], hit["title"]) == ("deep", metadata, "Dahab")


async def test_hits_carry_the_items_key_and_metadata(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await ingest(client, tenant.member, body="Nudibranch spotting.", metadata={"by": "ana"})
    [hit] = await search(client, tenant.member, query_text="nudibranch")
    assert (hit["key"], hit["metadata"]) == (None, {"by": "ana"})


async def test_concurrent_upserts_of_one_key_leave_one_whole_version(
    client: httpx.AsyncClient, tenant: Tenant, owner_engine: AsyncEngine
) -> None:
    versions = 10

    async def write(version: int) -> httpx.Response:
        chunks = [
            {"text": f"version {version} part {part}", "vector": axis((version + part) % DIM)}
            for part in range(version + 1)
        ]
        return await put(
            client, tenant.member, "race/doc", body=f"version {version}", chunks=chunks
        )

    answers = await asyncio.gather(*(write(version) for version in range(versions)))
    assert sorted(a.status_code for a in answers) == [200] * (versions - 1) + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    stored = (await by_key(client, tenant.member, "race/doc")).json()
    winner = int(stored["body"].split()[1])
    assert [c["text"] for c in stored["chunks"]] == [
        f"version {winner} part {part}" for part in range(winner + 1)
    ]
    async with owner_engine.connect() as conn:
        rows = (
            await conn.execute(
                select(Embedding.chunk_text).where(
                    Embedding.org_id == tenant.org_id,
                    Embedding.item_id == uuid.UUID(stored["id"]),
                )
            )
        ).all()
    assert sorted(row.chunk_text for row in rows) == sorted(
        f"version {winner} part {part}" for part in range(winner + 1)
    )


async def test_deep_or_huge_metadata_filters_are_4xx(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    def nested(depth: int) -> str:
        return '{"a":' * depth + "1" + "}" * depth

    headers = tenant.member.headers
    for depth in (5000, 100_000):
        raw = '{"query_text": "reef", "metadata": ' + nested(depth) + "}"
        response = await client.post("/v1/knowledge/search", content=raw, headers=headers)
        assert response.status_code in (400, 413), (depth, response.status_code)
    # A deep filter the decoder takes is searched as any other.
    raw = '{"query_text": "reef", "metadata": ' + nested(200) + "}"
    response = await client.post("/v1/knowledge/search", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["results"] == []
    wide = {f"k{n}": n for n in range(101)}
    body = assert_problem(
        await client.post(
            "/v1/knowledge/search", json={"query_text": "reef", "metadata": wide}, headers=headers
        ),
        422,
    )
    assert body["errors"][0]["pointer"] == "/metadata"
    not_an_object = {"query_text": "reef", "metadata": ["lang", "en"]}
    response = await client.post("/v1/knowledge/search", json=not_an_object, headers=headers)
    assert_problem(response, 422)
    huge = {"query_text": "reef", "metadata": {"k": "x" * 2_000_000}}
    response = await client.post("/v1/knowledge/search", json=huge, headers=headers)
    assert_problem(response, 413)


async def test_round_trips_of_an_upsert_a_list_and_a_filtered_search(
    client: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """An upsert is the opening, the item, the chunks and the commit, whatever the chunks."""
    many = [{"text": f"reef chunk {n}", "vector": axis(n % DIM)} for n in range(40)]
    caplog.set_level(logging.INFO, logger="itinera.access")
    caplog.clear()
    assert (await put(client, tenant.member, "rt", chunks=many)).status_code == 201
    assert (await put(client, tenant.member, "rt", chunks=many[:1])).status_code == 200
    assert (await put(client, tenant.member, "rt", chunks=many)).status_code == 200
    assert round_trips(caplog) == [4, 4, 4]
    await listed(client, tenant.member, source="guides/dahab.md", key="rt")
    assert round_trips(caplog) == [3]
    for fields in (
        {"query_text": "reef"},
        {"query_vector": axis(1)},
        {"query_text": "reef", "query_vector": axis(1)},
    ):
        await search(client, tenant.member, metadata={"lang": "en"}, **fields)
        assert round_trips(caplog) == [3], fields
