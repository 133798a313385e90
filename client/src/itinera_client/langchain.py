"""LangChain's ``VectorStore`` over Itinera's knowledge corpus: ``ItineraVectorStore``.

A Document is one knowledge item with one chunk. Its id is the item's ``key``
(any string of 1-255 characters), its ``page_content`` the item's body and the
chunk's text, its metadata the item's metadata (JSON, returned with its exact
types); the chunk's vector is what the store's ``Embeddings`` made of the text,
computed here and sent with it. Adding a document whose id is known replaces
that item, chunk and all.

The store is the whole corpus of the org its credentials act for: search sees
every item of the org, and items written through the API (several chunks,
perhaps no key) come back chunk by chunk, as Documents whose ``page_content``
is the chunk's text and whose ``id`` is the item's key (None without one).

Needs the ``langchain`` extra: ``pip install 'itinera-client[langchain]'``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Self, TypeVar

import anyio
import msgspec
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from itinera_client.adapter_clients import AdapterClients
from itinera_client.client import ItineraClient
from itinera_client.errors import NotFoundError
from itinera_client.schemas.knowledge import ChunkIn, KnowledgeCreate, SearchRequest, SearchResult
from itinera_client.sync import SyncItineraClient

__all__ = ["ItineraVectorStore"]

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_SOURCE = "langchain"
# The wire's bounds for what is taken from a document's metadata.
_MAX_SOURCE = 2048
_MAX_TITLE = 500


class ItineraVectorStore(AdapterClients, VectorStore):
    """A LangChain vector store kept by an Itinera service.

    Give it ``client`` (an ``ItineraClient``, for the ``a*`` methods) and/or
    ``sync_client`` (a ``SyncItineraClient``, for the others), or ``base_url``
    and ``api_key`` to have it make both; the clients you pass stay yours to
    close, the ones it makes are closed by ``close()`` (the sync one) and
    ``aclose()`` (both), or by leaving ``with`` / ``async with``.

    ``embedding`` computes every vector, on this side: the service stores and
    searches what it is sent. Its dimension must be the service's
    ``ITINERA_EMBEDDING_DIM``.

    Each item written gets ``source`` (or the document's ``metadata["source"]``
    when that is a string, as LangChain's loaders set it), a title (the
    document's ``metadata["title"]`` if a string, else its id),
    ``destination_id``, and ``model`` on its chunk; with ``model`` set, searches
    only consider chunks of that model. ``concurrency`` bounds the requests one
    async call keeps in flight. Every call is one request per document or id,
    and each takes a token from the caller's ``crud`` rate-limit bucket.
    """

    def __init__(
        self,
        embedding: Embeddings,
        *,
        client: ItineraClient | None = None,
        sync_client: SyncItineraClient | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        source: str = DEFAULT_SOURCE,
        destination_id: uuid.UUID | None = None,
        model: str | None = None,
        concurrency: int = 8,
    ) -> None:
        self.embedding = embedding
        self.source = source
        self.destination_id = destination_id
        self.model = model
        self.concurrency = concurrency
        self._use_clients(client, sync_client, base_url, api_key)

    @property
    def embeddings(self) -> Embeddings:
        return self.embedding

    # --- writing -----------------------------------------------------------------------

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Store the documents, replacing those whose ids are known; their ids.

        Ids come from ``ids=`` (first), else from each document's ``id``, else
        a new UUID. Every document is checked before the first is sent.
        """
        ids = _ids(documents, kwargs.get("ids"))
        vectors = self.embedding.embed_documents([doc.page_content for doc in documents])
        items = self._items(documents, ids, vectors)
        knowledge = self._sync().knowledge
        for item in items:
            knowledge.upsert(item)
        return ids

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        ids = _ids(documents, kwargs.get("ids"))
        vectors = await self.embedding.aembed_documents([doc.page_content for doc in documents])
        items = self._items(documents, ids, vectors)
        knowledge = self._async().knowledge
        await self._each(items, knowledge.upsert)
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete the documents of these ids; ids of no document are skipped."""
        knowledge = self._sync().knowledge
        for key in _to_delete(ids):
            with contextlib.suppress(NotFoundError):
                knowledge.delete_by_key(key)
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        knowledge = self._async().knowledge

        async def delete(key: str) -> None:
            with contextlib.suppress(NotFoundError):
                await knowledge.delete_by_key(key)

        await self._each(_to_delete(ids), delete)
        return True

    # --- reading -----------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents of these ids, in their order; ids of no document are skipped."""
        knowledge = self._sync().knowledge
        found = []
        for key in dict.fromkeys(ids):
            try:
                item = knowledge.get_by_key(key)
            except NotFoundError:
                continue
            found.append(Document(id=key, page_content=item.body, metadata=item.metadata))
        return found

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        knowledge = self._async().knowledge

        async def get(key: str) -> Document | None:
            try:
                item = await knowledge.get_by_key(key)
            except NotFoundError:
                return None
            return Document(id=key, page_content=item.body, metadata=item.metadata)

        return [doc for doc in await self._each(list(dict.fromkeys(ids)), get) if doc is not None]

    # --- searching ---------------------------------------------------------------------
    # Keyword arguments: ``filter`` (items whose metadata contains this JSON object)
    # and ``destination_id`` (the store's by default). Scores are cosine similarities.

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in await self.asimilarity_search_with_score(query, k, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` documents nearest to ``query``, best first, with their cosine similarity."""
        vector = self.embedding.embed_query(query)
        return self.similarity_search_with_score_by_vector(vector, k, **kwargs)

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        vector = await self.embedding.aembed_query(query)
        return await self.asimilarity_search_with_score_by_vector(vector, k, **kwargs)

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        return [
            doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, **kwargs)
        ]

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        found = await self.asimilarity_search_with_score_by_vector(embedding, k, **kwargs)
        return [doc for doc, _ in found]

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        request = self._search_request(embedding, k, **kwargs)
        return _scored(self._sync().knowledge.search(request).results)

    async def asimilarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        request = self._search_request(embedding, k, **kwargs)
        return _scored((await self._async().knowledge.search(request)).results)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # Scores are cosine similarities already: 1 - cosine distance, as LangChain's
        # own cosine relevance is.
        return _same

    # --- made from texts ---------------------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A store made with ``kwargs`` (``base_url`` and ``api_key``, or clients), holding
        the texts."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        store = cls(embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store

    # --- helpers -----------------------------------------------------------------------

    def _sync(self) -> SyncItineraClient:
        if self.sync_client is None:
            raise TypeError("this store has no SyncItineraClient: use its async methods")
        return self.sync_client

    def _async(self) -> ItineraClient:
        if self.client is None:
            raise TypeError("this store has no ItineraClient: use its sync methods")
        return self.client

    def _items(
        self, documents: list[Document], ids: list[str], vectors: list[list[float]]
    ) -> list[KnowledgeCreate]:
        items = [
            self._item(doc, key, vector)
            for doc, key, vector in zip(documents, ids, vectors, strict=True)
        ]
        # The wire types' own bounds, checked before anything is sent, so that one
        # document too long (or empty) does not leave the others half written.
        for index, item in enumerate(items):
            try:
                msgspec.convert(msgspec.to_builtins(item), KnowledgeCreate)
            except msgspec.ValidationError as exc:
                raise ValueError(
                    f"document {index} ({ids[index]!r}) cannot be stored: {exc}"
                ) from None
        # One write per key, the last document of that key: sent concurrently, two
        # writes of one key would land in either order.
        return list({item.key: item for item in items}.values())

    def _item(self, doc: Document, key: str, vector: list[float]) -> KnowledgeCreate:
        return KnowledgeCreate(
            key=key,
            source=_text(doc.metadata.get("source"), _MAX_SOURCE) or self.source,
            title=_text(doc.metadata.get("title"), _MAX_TITLE) or key,
            body=doc.page_content,
            metadata=dict(doc.metadata),
            destination_id=self.destination_id,
            chunks=[ChunkIn(text=doc.page_content, vector=_floats(vector), model=self.model)],
        )

    def _search_request(
        self,
        embedding: list[float],
        k: int,
        *,
        filter: dict[str, Any] | None = None,
        destination_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> SearchRequest:
        if filter is not None and _has_operator(filter):
            raise ValueError(
                "filter is a JSON object the metadata must contain, e.g. {'region': 'red-sea'};"
                " operators such as $eq or $in are not understood"
            )
        return SearchRequest(
            query_vector=_floats(embedding),
            k=k,
            metadata=filter,
            destination_id=destination_id or self.destination_id,
            model=self.model,
        )

    async def _each(self, values: Sequence[T], call: Callable[[T], Awaitable[R]]) -> list[R]:
        """``call`` on every value, ``concurrency`` at a time; the results in order.

        The first failure cancels the calls still running and is raised as it
        is, not wrapped in an exception group.
        """
        results: list[Any] = [None] * len(values)
        limiter = anyio.CapacityLimiter(self.concurrency)

        async def run(index: int, value: T) -> None:
            async with limiter:
                results[index] = await call(value)

        try:
            async with anyio.create_task_group() as group:
                for index, value in enumerate(values):
                    group.start_soon(run, index, value)
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return results


def _ids(documents: list[Document], given: Sequence[str | None] | None) -> list[str]:
    """``ids=`` if given, else each document's id; a new UUID where neither names one."""
    if given is not None and len(given) != len(documents):
        raise ValueError(f"{len(given)} ids for {len(documents)} documents")
    chosen: Iterable[str | None] = given if given is not None else (d.id for d in documents)
    return [key or str(uuid.uuid4()) for key in chosen]


def _to_delete(ids: list[str] | None) -> list[str]:
    if ids is None:
        # LangChain reads None as "everything"; here that would be the org's whole corpus.
        raise ValueError("name the ids to delete: the store is the org's whole knowledge corpus")
    return list(dict.fromkeys(ids))


def _scored(results: list[SearchResult]) -> list[tuple[Document, float]]:
    return [
        (Document(id=hit.key, page_content=hit.chunk_text, metadata=hit.metadata), hit.score)
        for hit in results
    ]


def _has_operator(value: object) -> bool:
    """Whether a filter holds a key like ``$eq``: other stores' operator syntax, which
    containment would read as a key to match, silently finding nothing."""
    if isinstance(value, dict):
        return any(
            (isinstance(k, str) and k.startswith("$")) or _has_operator(v) for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_has_operator(v) for v in value)
    return False


def _text(value: object, longest: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= longest else None


def _floats(vector: Iterable[float]) -> list[float]:
    # Embeddings often answer numpy floats, which msgspec does not encode.
    return [float(x) for x in vector]


def _same(score: float) -> float:
    return score
