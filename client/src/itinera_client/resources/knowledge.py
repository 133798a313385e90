"""The knowledge corpus: items (documents, optionally named by a key) with their chunks,
and search over them."""

from __future__ import annotations

import uuid

from itinera_client.calls import (
    AsyncRunner,
    Call,
    SyncRunner,
    json_of,
    nothing,
    query,
    with_created,
)
from itinera_client.schemas.knowledge import (
    KnowledgeCreate,
    KnowledgeItem,
    KnowledgeListQuery,
    KnowledgeSummary,
    SearchRequest,
    SearchResponse,
)
from itinera_client.schemas.pagination import Page


def _upsert(item: KnowledgeCreate) -> Call[tuple[KnowledgeItem, bool]]:
    return Call("POST", "/v1/knowledge", with_created(json_of(KnowledgeItem)), body=item)


def _list(filters: KnowledgeListQuery) -> Call[Page[KnowledgeSummary]]:
    return Call("GET", "/v1/knowledge", json_of(Page[KnowledgeSummary]), params=query(filters))


def _get(item_id: uuid.UUID) -> Call[KnowledgeItem]:
    return Call("GET", f"/v1/knowledge/{item_id}", json_of(KnowledgeItem))


def _get_by_key(key: str) -> Call[KnowledgeItem]:
    return Call("GET", "/v1/knowledge/by-key", json_of(KnowledgeItem), params={"key": key})


def _delete(item_id: uuid.UUID) -> Call[None]:
    return Call("DELETE", f"/v1/knowledge/{item_id}", nothing)


def _delete_by_key(key: str) -> Call[None]:
    return Call("DELETE", "/v1/knowledge/by-key", nothing, params={"key": key})


def _search(request: SearchRequest) -> Call[SearchResponse]:
    return Call("POST", "/v1/knowledge/search", json_of(SearchResponse), body=request)


class Knowledge:
    """``client.knowledge``. A key travels in the query string, so any text of 1-255
    characters (slashes, spaces, Unicode) names an item exactly."""

    def __init__(self, client: AsyncRunner) -> None:
        self._client = client

    async def upsert(self, item: KnowledgeCreate) -> tuple[KnowledgeItem, bool]:
        """Store an item and its chunks: the stored item, and whether it was created.

        With a ``key``: replaces the org's item of that key, chunks and all
        (``False``), or creates it (``True``). Without one: content the org
        already has answers the stored item (``False``).
        """
        return await self._client.run(_upsert(item))

    async def list(
        self,
        *,
        source: str | None = None,
        destination_id: uuid.UUID | None = None,
        key: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[KnowledgeSummary]:
        """Items without their chunks, newest first, filtered by what is given."""
        filters = KnowledgeListQuery(
            source=source, destination_id=destination_id, key=key, limit=limit, cursor=cursor
        )
        return await self._client.run(_list(filters))

    async def get(self, item_id: uuid.UUID) -> KnowledgeItem:
        return await self._client.run(_get(item_id))

    async def get_by_key(self, key: str) -> KnowledgeItem:
        """The item of ``key`` with its chunks; ``NotFoundError`` if none has it."""
        return await self._client.run(_get_by_key(key))

    async def delete(self, item_id: uuid.UUID) -> None:
        await self._client.run(_delete(item_id))

    async def delete_by_key(self, key: str) -> None:
        """Delete the item of ``key`` and its chunks; ``NotFoundError`` if none has it."""
        await self._client.run(_delete_by_key(key))

    async def search(self, request: SearchRequest) -> SearchResponse:
        """Vector, full-text or hybrid search; ``metadata`` keeps items whose metadata
        contains it. Hits carry their item's key and metadata."""
        return await self._client.run(_search(request))


class SyncKnowledge:
    """``sync_client.knowledge``: what ``Knowledge`` does, blocking."""

    def __init__(self, client: SyncRunner) -> None:
        self._client = client

    def upsert(self, item: KnowledgeCreate) -> tuple[KnowledgeItem, bool]:
        return self._client.run(_upsert(item))

    def list(
        self,
        *,
        source: str | None = None,
        destination_id: uuid.UUID | None = None,
        key: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[KnowledgeSummary]:
        filters = KnowledgeListQuery(
            source=source, destination_id=destination_id, key=key, limit=limit, cursor=cursor
        )
        return self._client.run(_list(filters))

    def get(self, item_id: uuid.UUID) -> KnowledgeItem:
        return self._client.run(_get(item_id))

    def get_by_key(self, key: str) -> KnowledgeItem:
        return self._client.run(_get_by_key(key))

    def delete(self, item_id: uuid.UUID) -> None:
        self._client.run(_delete(item_id))

    def delete_by_key(self, key: str) -> None:
        self._client.run(_delete_by_key(key))

    def search(self, request: SearchRequest) -> SearchResponse:
        return self._client.run(_search(request))
