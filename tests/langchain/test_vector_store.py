"""What the standard suite leaves out: a retriever with a metadata filter, metadata and
ids as they are, scores, items written through the API, and refusals."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_tests.integration_tests.vectorstores import EMBEDDING_SIZE

from itinera_client import ItineraClient
from itinera_client.langchain import ItineraVectorStore
from itinera_client.schemas.knowledge import ChunkIn, KnowledgeCreate
from tests.support.live_service import LiveService

SITES = [
    Document(id="sites/blue-hole", page_content="The Blue Hole", metadata={"region": "red-sea"}),
    Document(id="sites/thistlegorm", page_content="SS Thistlegorm", metadata={"region": "red-sea"}),
    Document(id="sites/ras-mohammed", page_content="Ras Mohammed", metadata={"region": "red-sea"}),
    Document(id="sites/manta-point", page_content="Manta Point", metadata={"region": "bali"}),
    Document(id="sites/liberty", page_content="USAT Liberty", metadata={"region": "bali"}),
]


@pytest.fixture
async def store(langchain_service: LiveService, api_key: str) -> AsyncIterator[ItineraVectorStore]:
    embedding = DeterministicFakeEmbedding(size=EMBEDDING_SIZE)
    base_url = langchain_service.base_url
    async with ItineraVectorStore(embedding, base_url=base_url, api_key=api_key) as store:
        yield store


def vector(embedding: DeterministicFakeEmbedding, text: str) -> list[float]:
    return [float(x) for x in embedding.embed_query(text)]  # numpy floats, as plain ones


def regions(documents: list[Document]) -> set[str]:
    return {doc.metadata["region"] for doc in documents}


async def test_a_retriever_with_a_metadata_filter_finds_k_documents_of_that_metadata(
    store: ItineraVectorStore,
) -> None:
    await store.aadd_documents(SITES)
    retriever = store.as_retriever(search_kwargs={"k": 2, "filter": {"region": "red-sea"}})

    found = retriever.invoke("wreck dives")
    found_async = await retriever.ainvoke("wreck dives")

    assert found == found_async
    assert len(found) == 2
    assert regions(found) == {"red-sea"}
    assert {doc.id for doc in found} <= {
        "sites/blue-hole",
        "sites/thistlegorm",
        "sites/ras-mohammed",
    }
    bali = store.as_retriever(search_kwargs={"k": 5, "filter": {"region": "bali"}})
    assert {doc.id for doc in await bali.ainvoke("x")} == {"sites/manta-point", "sites/liberty"}
    assert store.as_retriever(search_kwargs={"filter": {"region": "arctic"}}).invoke("x") == []


def test_metadata_and_ids_come_back_exactly_as_they_were_added(store: ItineraVectorStore) -> None:
    metadata = {
        "int": 1,
        "float": 1.5,
        "whole float": 2.0,
        "negative": -7,
        "bool": True,
        "null": None,
        "text": "ünïcødé ✓",
        "list": [1, "two", 3.0, False, None, {"nested": []}],
        "object": {"deep": {"deeper": [0.25]}},
    }
    ids = ["guides/dahab/blue hole.md", "ünïcødé id ✓", "x" * 255]
    documents = [Document(page_content=f"text {n}", metadata=metadata) for n in range(3)]

    assert store.add_documents(documents, ids=ids) == ids

    for found in (store.get_by_ids(ids), store.similarity_search("text 0", k=3)):
        assert sorted(doc.id for doc in found if doc.id) == sorted(ids)
        for doc in found:
            assert doc.metadata == metadata
            # jsonb keeps its own key order; each value keeps its JSON type.
            assert {k: type(v) for k, v in doc.metadata.items()} == {
                k: type(v) for k, v in metadata.items()
            }
            assert doc.metadata["list"][2] == 3.0
            assert type(doc.metadata["list"][2]) is float


async def test_scores_are_cosine_similarities_best_first(store: ItineraVectorStore) -> None:
    await store.aadd_documents(SITES)

    scored = await store.asimilarity_search_with_score("Manta Point", k=5)
    # The nearest two score above 0 with these fake vectors: LangChain warns of any
    # relevance below 0, which a cosine similarity may be.
    relevance = store.similarity_search_with_relevance_scores("Manta Point", k=2)

    assert scored[0][0].id == "sites/manta-point"
    assert math.isclose(scored[0][1], 1.0, abs_tol=1e-6)
    scores = [score for _, score in scored]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 - 1e-6 <= score <= 1.0 + 1e-6 for score in scores)
    assert [(doc.id, round(s, 6)) for doc, s in relevance] == [
        (doc.id, round(s, 6)) for doc, s in scored[:2]
    ]


async def test_items_written_through_the_api_come_back_chunk_by_chunk(
    store: ItineraVectorStore, langchain_service: LiveService, api_key: str
) -> None:
    embedding = DeterministicFakeEmbedding(size=EMBEDDING_SIZE)
    texts = ["first chunk", "second chunk"]
    async with ItineraClient(langchain_service.base_url, api_key=api_key) as client:
        for key in ("guides/two-chunks.md", None):
            await client.knowledge.upsert(
                KnowledgeCreate(
                    key=key,
                    source="api",
                    title="Two chunks",
                    body=f"{key}: first chunk, second chunk",
                    metadata={"written": "api"},
                    chunks=[ChunkIn(text=t, vector=vector(embedding, t)) for t in texts],
                )
            )

    found = await store.asimilarity_search("second chunk", k=4)

    assert sorted((doc.id or "", doc.page_content) for doc in found) == [
        ("", "first chunk"),
        ("", "second chunk"),
        ("guides/two-chunks.md", "first chunk"),
        ("guides/two-chunks.md", "second chunk"),
    ]
    assert all(doc.metadata == {"written": "api"} for doc in found)
    [whole] = store.get_by_ids(["guides/two-chunks.md"])
    assert whole.page_content == "guides/two-chunks.md: first chunk, second chunk"


async def test_a_document_that_cannot_be_stored_stops_the_batch_before_anything_is_sent(
    store: ItineraVectorStore,
) -> None:
    good = Document(page_content="fine")
    for bad, ids in [
        (Document(page_content=""), ["a", "b"]),
        (Document(page_content="x" * 20_001), ["a", "b"]),
        (Document(page_content="fine too"), ["a", "k" * 256]),
    ]:
        with pytest.raises(ValueError, match="document 1"):
            await store.aadd_documents([good, bad], ids=ids)
        with pytest.raises(ValueError, match="document 1"):
            store.add_documents([good, bad], ids=ids)

    assert await store.aget_by_ids(["a", "b"]) == []


async def test_deleting_everything_is_refused_and_one_face_stores_refuse_the_other(
    store: ItineraVectorStore, langchain_service: LiveService, api_key: str
) -> None:
    with pytest.raises(ValueError, match="name the ids"):
        store.delete()
    with pytest.raises(ValueError, match="name the ids"):
        await store.adelete(None)

    embedding = DeterministicFakeEmbedding(size=EMBEDDING_SIZE)
    async with ItineraClient(langchain_service.base_url, api_key=api_key) as client:
        async_only = ItineraVectorStore(embedding, client=client)
        assert await async_only.aadd_documents([Document(page_content="a")], ids=["a"]) == ["a"]
        with pytest.raises(TypeError, match="no SyncItineraClient"):
            async_only.get_by_ids(["a"])
    with pytest.raises(TypeError, match="give client"):
        ItineraVectorStore(embedding)


async def test_an_id_twice_in_one_batch_keeps_the_last_document(
    store: ItineraVectorStore,
) -> None:
    first, last = Document(page_content="first"), Document(page_content="last")

    assert await store.aadd_documents([first, last], ids=["a", "a"]) == ["a", "a"]
    assert store.add_documents([first, last], ids=["b", "b"]) == ["b", "b"]

    found = await store.aget_by_ids(["a", "b"])
    assert [(doc.id, doc.page_content) for doc in found] == [("a", "last"), ("b", "last")]


def test_a_filter_in_another_stores_operator_syntax_is_refused(store: ItineraVectorStore) -> None:
    for operators in ({"region": {"$eq": "bali"}}, {"$and": [{"region": "bali"}]}):
        with pytest.raises(ValueError, match="operators"):
            store.similarity_search("x", filter=operators)
