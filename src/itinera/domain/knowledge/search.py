"""Retrieval over a tenant's chunks: vector (HNSW), full text, or both fused by RRF.

Each shape of search is one statement, compiled once on first use: the
builders are keyed by the leg(s) and by which optional filters are present,
never by their values; ``k`` and the fusion depth are the ``:limit`` parameter.
A metadata filter is JSON containment (``@>``) on the chunk's item, inside
each leg, so a vector leg's iterative index scan goes on until it has ``k``
chunks that pass.
A hybrid search runs both legs in one statement (one round trip) and fuses
them here.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import asyncpg
import msgspec
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Subquery,
    and_,
    bindparam,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB

from itinera.db.models import Embedding
from itinera.db.models import KnowledgeItem as ItemRow
from itinera.db.prepared import Prepared
from itinera.db.repository import TenantRepository
from itinera.domain.knowledge.terms import distinct_websearch, first_distinct_words
from itinera.domain.knowledge.vectors import unit
from itinera_client.schemas.knowledge import SearchRequest, SearchResult

RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al.)

# How a text leg reads its query: websearch syntax (a search request), or any
# of a message's words (chat hits: "a | b | c", letters and digits only).
TextQuery = Literal["websearch", "any_word"]

_RESULT_FIELDS = SearchResult.__struct_fields__


def hnsw_settings(k: int) -> dict[str, str]:
    """Per-transaction knobs of a vector search: a wider beam for larger k, iterative
    scans so a tenant filter that rejects most neighbours still yields k rows, and a
    plan made for this org's parameters each time.

    The statement is prepared once per connection, and PostgreSQL would soon
    settle on one generic plan for every org; planned with the org at hand, a
    small tenant gets an exact scan through its ``org_id`` rows instead of an
    index walk through everyone else's neighbours (which an iterative scan gives
    up on after ``hnsw.max_scan_tuples``, returning wrong neighbours).
    Only vector searches read these: a text-only search needs none.
    """
    return {
        "hnsw.ef_search": str(max(40, 2 * k)),
        "hnsw.iterative_scan": "relaxed_order",
        "plan_cache_mode": "force_custom_plan",
    }


def fusion_depth(k: int) -> int:
    return max(50, 4 * k)


def reciprocal_rank_fusion(legs: Sequence[Sequence[SearchResult]], k: int) -> list[SearchResult]:
    """Σ 1/(60 + rank) over the legs a chunk appears in; ties keep the first leg's order."""
    scores: dict[uuid.UUID, float] = {}
    first_seen: dict[uuid.UUID, SearchResult] = {}
    for leg in legs:
        for rank, result in enumerate(leg, start=1):
            scores[result.chunk_id] = scores.get(result.chunk_id, 0.0) + 1.0 / (RRF_K + rank)
            first_seen.setdefault(result.chunk_id, result)
    ranked = sorted(scores, key=lambda chunk_id: scores[chunk_id], reverse=True)[:k]
    return [_rescored(first_seen[chunk_id], scores[chunk_id]) for chunk_id in ranked]


def _rescored(result: SearchResult, score: float) -> SearchResult:
    return msgspec.structs.replace(result, score=score)


# --- statements --------------------------------------------------------------------------

_ORG = Embedding.org_id == bindparam("org_id")
_LIMIT = bindparam("limit", type_=Integer)


def _chunk_columns() -> tuple[Any, ...]:
    return (
        Embedding.item_id,
        Embedding.id.label("chunk_id"),
        Embedding.chunk_index,
        Embedding.chunk_text,
    )


def _filters(by_destination: bool, by_metadata: bool) -> list[ColumnElement[bool]]:
    filters = []
    if by_destination:
        filters.append(Embedding.destination_id == bindparam("destination_id"))
    if by_metadata:
        contains = ItemRow.metadata_.contains(bindparam("metadata", type_=JSONB))
        items = select(ItemRow.id).where(ItemRow.org_id == bindparam("org_id"), contains)
        filters.append(Embedding.item_id.in_(items))
    return filters


def _with_items(chunks: Subquery, *extra: Any) -> Select[Any]:
    columns = (ItemRow.title, ItemRow.source, ItemRow.key, ItemRow.metadata_.label("metadata"))
    return select(*extra, chunks, *columns).join(
        ItemRow, and_(ItemRow.org_id == bindparam("org_id"), ItemRow.id == chunks.c.item_id)
    )


def _nearest(by_destination: bool, by_model: bool, by_metadata: bool) -> Subquery:
    """The nearest chunks to ``:vector`` by cosine distance, in the index's shape.

    ORDER BY distance LIMIT n is what the HNSW index answers; iterative scans
    may return it slightly out of order, so the outer query sorts again.
    """
    distance = Embedding.embedding.cosine_distance(
        bindparam("vector", type_=Embedding.embedding.type)
    )
    filters = _filters(by_destination, by_metadata)
    if by_model:
        filters.append(Embedding.model == bindparam("model"))
    return (
        select(*_chunk_columns(), (literal(1.0) - distance).label("score"))
        .where(_ORG, Embedding.embedding.is_not(None), *filters)
        .order_by(distance)
        .limit(_LIMIT)
        .subquery("nearest")
    )


def _matching(query: TextQuery, by_destination: bool, by_metadata: bool) -> Subquery:
    """Chunks whose ``tsv`` matches ``:query``, ranked by ``ts_rank_cd``."""
    parse = func.websearch_to_tsquery if query == "websearch" else func.to_tsquery
    # A scalar subquery (an InitPlan) parses the query once per execution: in
    # a generic plan of the prepared statement it would otherwise be parsed
    # again for every matching row (+50% on 10,000 rows of a 32-word query).
    tsquery = select(parse("english", bindparam("query"))).scalar_subquery()
    rank = func.ts_rank_cd(Embedding.tsv, tsquery)
    return (
        select(*_chunk_columns(), rank.label("score"))
        .where(_ORG, Embedding.tsv.bool_op("@@")(tsquery), *_filters(by_destination, by_metadata))
        .order_by(rank.desc(), Embedding.id)
        .limit(_LIMIT)
        .subquery("matching")
    )


def _vector_leg(
    by_destination: bool, by_model: bool, by_similarity: bool, by_metadata: bool, *, ranked: bool
) -> Select[Any]:
    """The vector leg: best first, or (``ranked``) with its leg number and ranks."""
    nearest = _nearest(by_destination, by_model, by_metadata)
    order = (nearest.c.score.desc(),)
    statement = _with_items(nearest, *_rank_columns(0, order, ranked))
    if by_similarity:
        # After the top n: a threshold inside would stop the index scan early.
        statement = statement.where(nearest.c.score >= bindparam("min_similarity"))
    return statement if ranked else statement.order_by(*order)


def _text_leg(
    query: TextQuery, by_destination: bool, by_metadata: bool, *, ranked: bool
) -> Select[Any]:
    matching = _matching(query, by_destination, by_metadata)
    order = (matching.c.score.desc(), matching.c.chunk_id)
    statement = _with_items(matching, *_rank_columns(1, order, ranked))
    return statement if ranked else statement.order_by(*order)


def _rank_columns(leg: int, order: tuple[Any, ...], ranked: bool) -> tuple[Any, ...]:
    if not ranked:
        return ()
    return literal(leg).label("leg"), func.row_number().over(order_by=order).label("rank")


@functools.cache
def by_vector_statement(
    by_destination: bool, by_model: bool, by_similarity: bool, by_metadata: bool
) -> Prepared:
    return Prepared(_vector_leg(by_destination, by_model, by_similarity, by_metadata, ranked=False))


@functools.cache
def by_text_statement(query: TextQuery, by_destination: bool, by_metadata: bool) -> Prepared:
    return Prepared(_text_leg(query, by_destination, by_metadata, ranked=False))


@functools.cache
def hybrid_statement(
    by_destination: bool, by_model: bool, by_similarity: bool, by_metadata: bool
) -> Prepared:
    """Both legs in one statement, each at ``:limit`` (the fusion depth) and in its own
    order: the rows of leg 0 (vector) by rank, then those of leg 1 (text)."""
    legs = union_all(
        _vector_leg(by_destination, by_model, by_similarity, by_metadata, ranked=True),
        _text_leg("websearch", by_destination, by_metadata, ranked=True),
    )
    return Prepared(legs.order_by("leg", "rank"))


def _result(row: asyncpg.Record) -> SearchResult:
    return SearchResult(**{name: row[name] for name in _RESULT_FIELDS})


class KnowledgeSearch(TenantRepository):
    """Search one org's chunks: one statement per search, whatever its mode."""

    async def search(self, request: SearchRequest) -> list[SearchResult]:
        # Refuse too many terms before anything runs.
        query_text = None if request.query_text is None else distinct_websearch(request.query_text)
        if query_text is not None and request.query_vector is None:
            return await self.by_text(query_text, request)
        # The HNSW knobs travel in the transaction's opening message: no round
        # trip of their own when this is the request's first statement.
        await self.uow.use_settings(hnsw_settings(request.k))
        if query_text is None:
            return await self.by_vector(request, request.k)
        if not query_text:
            # Nothing to match (the text had no words): the text leg is empty.
            return reciprocal_rank_fusion(
                [await self.by_vector(request, fusion_depth(request.k)), []], request.k
            )
        return reciprocal_rank_fusion(await self._hybrid(request, query_text), request.k)

    async def by_vector(self, request: SearchRequest, limit: int) -> list[SearchResult]:
        """Nearest chunks by cosine similarity ``1 - (a <=> b)``; ``min_similarity``
        applies after the top ``limit``."""
        assert request.query_vector is not None
        statement = by_vector_statement(
            request.destination_id is not None,
            request.model is not None,
            request.min_similarity is not None,
            request.metadata is not None,
        )
        rows = await self.all(statement, limit=limit, **self._vector_params(request))
        return [_result(row) for row in rows]

    async def by_text(self, query_text: str, request: SearchRequest) -> list[SearchResult]:
        """Chunks matching ``websearch_to_tsquery``, ranked by ``ts_rank_cd``.

        ``query_text`` is what :func:`distinct_websearch` made of the request's.
        """
        if not query_text:
            return []
        statement = by_text_statement(
            "websearch", request.destination_id is not None, request.metadata is not None
        )
        rows = await self.all(
            statement,
            query=query_text,
            limit=request.k,
            destination_id=request.destination_id,
            metadata=request.metadata,
        )
        return [_result(row) for row in rows]

    async def by_any_word(self, text: str, limit: int) -> list[SearchResult]:
        """Chunks sharing any of the first 32 distinct words of ``text``, ranked by
        ``ts_rank_cd``: more shared words rank higher.

        That suits conversational text, where requiring every word finds
        nothing; taking the first words, never refusing, suits a message of
        any length. A text search reads no HNSW setting: none is set for it.
        """
        found = first_distinct_words(text)
        if not found:
            return []
        # Words are letters and digits only, so they cannot spell tsquery syntax.
        rows = await self.all(
            by_text_statement("any_word", False, False), query=" | ".join(found), limit=limit
        )
        return [_result(row) for row in rows]

    async def _hybrid(self, request: SearchRequest, query_text: str) -> list[list[SearchResult]]:
        statement = hybrid_statement(
            request.destination_id is not None,
            request.model is not None,
            request.min_similarity is not None,
            request.metadata is not None,
        )
        rows = await self.all(
            statement,
            limit=fusion_depth(request.k),
            query=query_text,
            **self._vector_params(request),
        )
        legs: list[list[SearchResult]] = [[], []]
        for row in rows:
            legs[row["leg"]].append(_result(row))
        return legs

    @staticmethod
    def _vector_params(request: SearchRequest) -> dict[str, Any]:
        assert request.query_vector is not None
        return {
            # At unit length, as stored: a list of floats, sent in pgvector's binary form.
            "vector": unit(request.query_vector),
            "destination_id": request.destination_id,
            "metadata": request.metadata,
            "model": request.model,
            "min_similarity": request.min_similarity,
        }
