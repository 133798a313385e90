"""Bounded text queries: each distinct term once, at most 32 of them, chat never refused."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.db.models import Embedding, KnowledgeItem, Org, new_id
from itinera.domain.knowledge.terms import distinct_websearch, first_distinct_words, words
from itinera.errors import InvalidInputError
from itinera.settings import Settings
from tests.support.database import TEST_EMBEDDING_DIM as DIM
from tests.support.http import assert_problem
from tests.support.tenants import Tenant, make_tenant

DIVE_WORDS = [
    "reef",
    "wall",
    "drift",
    "current",
    "visibility",
    "nudibranch",
    "turtle",
    "shark",
    "wreck",
    "cave",
    "night",
    "dive",
    "depth",
    "coral",
    "grouper",
    "barracuda",
    "octopus",
    "lionfish",
    "moray",
    "anemone",
    "clownfish",
    "pinnacle",
    "thermocline",
    "buoyancy",
    "regulator",
    "fins",
    "mask",
    "hammerhead",
    "dolphin",
    "whale",
    "eagle",
    "lagoon",
]
CHUNKS = 10_000
CHUNKS_PER_ITEM = 1_000
WITH_VECTORS = 200


def test_a_word_repeated_is_one_term() -> None:
    assert distinct_websearch(" ".join(["manta"] * 333)) == '"manta"'
    assert distinct_websearch("Manta MANTA manta rays") == '"Manta" "rays"'
    assert distinct_websearch("manta or manta or manta") == '"manta"'


def test_websearch_syntax_survives() -> None:
    assert distinct_websearch('-"manta ray" or shark') == '-"manta ray" or "shark"'
    assert distinct_websearch("manta - ray") == '"manta" -"ray"'
    # A hyphenated word stays one phrase; operators of to_tsquery are only punctuation.
    assert distinct_websearch("blue-ringed (octopus) & <-> !") == '"blue ringed" "octopus"'
    assert distinct_websearch("or manta or or ray or") == '"manta" or "ray"'
    assert distinct_websearch('"or"') == '"or"'
    assert distinct_websearch("!!! ???") == ""


def test_repeats_that_change_nothing_go_first() -> None:
    assert distinct_websearch("whale shark or whale watching") == (
        '"whale" "shark" or "whale" "watching"'
    )
    assert distinct_websearch("whale shark or shark whale shark") == '"whale" "shark"'
    assert distinct_websearch('"manta manta" manta -manta') == '"manta manta" "manta" -"manta"'


def test_past_32_words_each_term_keeps_its_first_occurrence() -> None:
    branches = " or ".join(f"manta w{n}" for n in range(31))
    assert distinct_websearch(branches) == '"manta" "w0" or ' + " or ".join(
        f'"w{n}"' for n in range(1, 31)
    )
    assert distinct_websearch('"' + " ".join(["manta"] * 333) + '"') == '"manta"'


def test_more_than_32_distinct_terms_are_refused() -> None:
    assert len(set(DIVE_WORDS)) == 32
    thirty_two = " ".join(DIVE_WORDS)
    assert distinct_websearch(thirty_two + " " + thirty_two.upper())
    # The sign makes a term: -reef is not reef.
    for query in (thirty_two + " manta", thirty_two + " -reef"):
        with pytest.raises(InvalidInputError) as refused:
            distinct_websearch(query)
        assert [e.pointer for e in refused.value.errors] == ["/query_text"]


def test_words_split_where_postgres_splits() -> None:
    # PostgreSQL's parser splits at "other numbers" (², ½) and underscores.
    assert list(words("manta²manta½ray x_y café 30m")) == [
        "manta",
        "manta",
        "ray",
        "x",
        "y",
        "café",
        "30m",
    ]


def test_chat_takes_the_first_32_distinct_words() -> None:
    message = "Manta manta MANTA! " * 100 + " ".join(f"w{n}" for n in range(40))
    assert first_distinct_words(message) == ["Manta", *(f"w{n}" for n in range(31))]


def _chunk_text(rng: random.Random, n: int) -> str:
    # 16 dive words, "manta" among them once, twice in every 150th chunk and
    # three times in every 300th: the top 100 hold three different scores.
    mantas = 1 + (n % 150 == 0) + (n % 300 == 0)
    return " ".join(["manta"] * mantas + rng.choices(DIVE_WORDS, k=16 - mantas))


@pytest.fixture(scope="module")
async def crowded(owner_engine: AsyncEngine, settings: Settings) -> AsyncIterator[Tenant]:
    """An org of 10,000 chunks of dive words, every one mentioning mantas."""
    tenant = await make_tenant(owner_engine, settings)
    rng = random.Random(7)
    async with owner_engine.begin() as conn:
        for first in range(0, CHUNKS, CHUNKS_PER_ITEM):
            item_id = new_id()
            await conn.execute(
                insert(KnowledgeItem).values(
                    org_id=tenant.org_id,
                    id=item_id,
                    source="guides/crowd.md",
                    title=f"Crowd {first}",
                    body="many chunks",
                    content_hash=item_id.bytes * 2,
                )
            )
            rows: list[dict[str, Any]] = [
                {
                    "org_id": tenant.org_id,
                    "id": new_id(),
                    "item_id": item_id,
                    "chunk_index": index,
                    "chunk_text": _chunk_text(rng, first + index),
                    "embedding": [1.0, (first + index) / CHUNKS] + [0.0] * (DIM - 2)
                    if first + index < WITH_VECTORS
                    else None,
                }
                for index in range(CHUNKS_PER_ITEM)
            ]
            await conn.execute(insert(Embedding), rows)
    yield tenant
    async with owner_engine.begin() as conn:
        await conn.execute(delete(Org).where(Org.id == tenant.org_id))


async def search(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> httpx.Response:
    return await client.post("/v1/knowledge/search", json=fields, headers=tenant.member.headers)


def _ranked(response: httpx.Response) -> list[tuple[str, float]]:
    assert response.status_code == 200, response.text
    return [(r["chunk_id"], r["score"]) for r in response.json()["results"]]


@pytest.mark.slow
async def test_a_word_said_333_times_answers_as_the_word(
    client: httpx.AsyncClient, crowded: Tenant
) -> None:
    attack = " ".join(["manta"] * 333)
    once = _ranked(await search(client, crowded, query_text="manta", k=100))
    assert len(once) == 100
    assert len({score for _, score in once}) == 3
    assert _ranked(await search(client, crowded, query_text=attack, k=100)) == once
    vector = [1.0] + [0.0] * (DIM - 1)
    hybrid_once = _ranked(await search(client, crowded, query_text="manta", query_vector=vector))
    hybrid = _ranked(await search(client, crowded, query_text=attack, query_vector=vector))
    assert hybrid == hybrid_once
    assert len(hybrid) == 10


@pytest.mark.slow
async def test_33_distinct_terms_are_422_and_32_answer(
    client: httpx.AsyncClient, crowded: Tenant
) -> None:
    vector = [1.0] + [0.0] * (DIM - 1)
    for fields in ({}, {"query_vector": vector}):
        refused = await search(
            client, crowded, query_text=" ".join([*DIVE_WORDS, "manta"]), **fields
        )
        problem = assert_problem(refused, 422)
        assert [e["pointer"] for e in problem["errors"]] == ["/query_text"]
        assert "32" in problem["errors"][0]["detail"]
    # All 32 terms in every chunk would be rare; any of them is the costly case.
    assert len(_ranked(await search(client, crowded, query_text=" or ".join(DIVE_WORDS)))) == 10
    assert _ranked(await search(client, crowded, query_text=" ".join(DIVE_WORDS))) == []


@pytest.mark.slow
async def test_a_long_user_message_gets_hits(client: httpx.AsyncClient, crowded: Tenant) -> None:
    opened = await client.post("/v1/chat/sessions", json={}, headers=crowded.member.headers)
    rng = random.Random(11)
    message = " ".join(rng.choices([*DIVE_WORDS, "manta", "mantas", "please"], k=400))[:2000]
    assert len(message) == 2000
    posted = await client.post(
        f"{opened.headers['location']}/messages",
        json={"role": "user", "content": message},
        headers=crowded.member.headers,
    )
    assert posted.status_code == 201, posted.text
    hits = posted.json()["hits"]
    assert len(hits) == 5
    assert all(set(hit["chunk_text"].split()) & set(message.split()) for hit in hits)
