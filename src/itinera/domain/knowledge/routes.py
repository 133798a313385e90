"""Knowledge items as documents: ingest or upsert by key, list, read and delete by id
or key, and search.

A key travels in the query string (``/v1/knowledge/by-key?key=guides%2Fdahab.md``),
URL-encoded, never in the path: a key may hold slashes, and a path segment
would need them escaped in a way proxies and routers treat differently.
"""

from __future__ import annotations

import uuid

from starlette.responses import Response

from itinera.domain.knowledge.repository import KnowledgeRepository
from itinera.domain.knowledge.search import KnowledgeSearch
from itinera.domain.knowledge.vectors import vector_errors
from itinera.errors import InvalidInputError, NotFoundError
from itinera.http import JSONResponse
from itinera.routing import Api, Context, Idempotency
from itinera_client.schemas.knowledge import (
    KnowledgeCreate,
    KnowledgeItem,
    KnowledgeKeyQuery,
    KnowledgeListQuery,
    KnowledgeSummary,
    SearchRequest,
    SearchResponse,
)
from itinera_client.schemas.pagination import Page

api = Api(tag="knowledge")


def _repository(ctx: Context) -> KnowledgeRepository:
    return ctx.repository(KnowledgeRepository)


@api.get(
    "/v1/knowledge",
    summary="List items (without their chunks), newest first",
    response=Page[KnowledgeSummary],
)
async def list_knowledge(ctx: Context, query: KnowledgeListQuery) -> Response:
    items, next_key = await _repository(ctx).list(
        limit=query.limit,
        after=ctx.after(query.cursor, uuid.UUID),
        source=query.source,
        destination_id=query.destination_id,
        key=query.key,
    )
    return JSONResponse(ctx.page(items, next_key))


@api.post(
    "/v1/knowledge",
    summary=(
        "Ingest an item with its chunks. With a key: replaces the item of that key, "
        "chunks and all (200), or creates it (201). Without: known content answers 200 "
        "with the stored item"
    ),
    response=KnowledgeItem,
    status=201,
    statuses=(200,),
)
async def ingest_knowledge(ctx: Context, body: KnowledgeCreate) -> Response:
    dim = ctx.resources.settings.embedding_dim
    vectors = [
        (f"/chunks/{index}/vector", chunk.vector)
        for index, chunk in enumerate(body.chunks or [])
        if chunk.vector is not None
    ]
    if problems := vector_errors(vectors, dim):
        raise InvalidInputError("some chunk vectors cannot be used", problems)
    item, created = await _repository(ctx).ingest(body)
    location = {"Location": f"/v1/knowledge/{item.id}"}
    return JSONResponse(item, status_code=201 if created else 200, headers=location)


@api.get("/v1/knowledge/{id:uuid}", summary="One item and its chunks", response=KnowledgeItem)
async def get_knowledge(ctx: Context) -> Response:
    item = await _repository(ctx).get(ctx.path_id())
    if item is None:
        raise NotFoundError("no such knowledge item")
    return JSONResponse(item)


@api.get(
    "/v1/knowledge/by-key",
    summary="The item of a key (URL-encoded in ?key=) and its chunks",
    response=KnowledgeItem,
    statuses=(404,),
)
async def get_knowledge_by_key(ctx: Context, query: KnowledgeKeyQuery) -> Response:
    item = await _repository(ctx).get_by_key(query.key)
    if item is None:
        raise NotFoundError("no knowledge item has this key")
    return JSONResponse(item)


@api.delete(
    "/v1/knowledge/by-key",
    summary="Delete the item of a key (URL-encoded in ?key=) and its chunks",
    statuses=(404,),
)
async def delete_knowledge_by_key(ctx: Context, query: KnowledgeKeyQuery) -> Response:
    if not await _repository(ctx).delete_by_key(query.key):
        raise NotFoundError("no knowledge item has this key")
    return Response(status_code=204)


@api.delete("/v1/knowledge/{id:uuid}", summary="Delete an item and its chunks")
async def delete_knowledge(ctx: Context) -> Response:
    if not await _repository(ctx).delete(ctx.path_id()):
        raise NotFoundError("no such knowledge item")
    return Response(status_code=204)


@api.post(
    "/v1/knowledge/search",
    summary="Vector, full-text or hybrid (RRF) search over the org's chunks",
    response=SearchResponse,
    idempotency=Idempotency.NONE,
)
async def search_knowledge(ctx: Context, body: SearchRequest) -> Response:
    if body.query_text is None and body.query_vector is None:
        raise InvalidInputError("send query_text, query_vector or both")
    if body.query_vector is not None and (
        problems := vector_errors(
            [("/query_vector", body.query_vector)], ctx.resources.settings.embedding_dim
        )
    ):
        raise InvalidInputError("the query vector cannot be used", problems)
    results = await ctx.repository(KnowledgeSearch).search(body)
    return JSONResponse(SearchResponse(results=results))
