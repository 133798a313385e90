"""Retrieval over a tenant's chunks: vector (HNSW), full text, or both fused by RRF."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, select

from itinera.db.models import Embedding
from itinera.db.models import KnowledgeItem as ItemRow
from itinera.db.tenancy import TenantRepository
from itinera.db.unit_of_work import UnitOfWork
from itinera.domain.knowledge.schemas import SearchRequest, SearchResult
from itinera.domain.knowledge.terms import distinct_websearch, first_distinct_words
from itinera.domain.knowledge.vectors import unit

RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al.)


def hnsw_settings(k: int) -> dict[str, str]:
    """Per-transaction HNSW knobs: a wider beam for larger k, and iterative scans so a
    tenant filter that rejects most neighbours still yields k rows."""
    return {"hnsw.ef_search": str(max(40, 2 * k)), "hnsw.iterative_scan": "relaxed_order"}


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
    return SearchResult(
        item_id=result.item_id,
        chunk_id=result.chunk_id,
        chunk_index=result.chunk_index,
        chunk_text=result.chunk_text,
        score=score,
        title=result.title,
        source=result.source,
    )


class KnowledgeSearch(TenantRepository):
    """Search one org's chunks. Build it with :meth:`open` so the HNSW settings land
    in the same statement as the tenant setting."""

    @classmethod
    async def open(cls, uow: UnitOfWork, org_id: uuid.UUID, k: int) -> KnowledgeSearch:
        await uow.apply_settings(hnsw_settings(k))
        return cls(await uow.session(), org_id)

    async def search(self, request: SearchRequest) -> list[SearchResult]:
        # Refuse too many terms before any leg runs (hybrid runs the vector leg first).
        query_text = None if request.query_text is None else distinct_websearch(request.query_text)
        if query_text is None:
            return await self.by_vector(request, request.k)
        if request.mode == "text":
            return await self.by_text(query_text, request.k, request.destination_id)
        depth = fusion_depth(request.k)
        legs = [
            await self.by_vector(request, depth),
            await self.by_text(query_text, depth, request.destination_id),
        ]
        return reciprocal_rank_fusion(legs, request.k)

    async def by_vector(self, request: SearchRequest, limit: int) -> list[SearchResult]:
        """Nearest chunks by cosine similarity ``1 - (a <=> b)``.

        The inner query is the index's shape (ORDER BY distance LIMIT n);
        iterative scans may return it slightly out of order, so the outer
        query sorts again. ``min_similarity`` applies after the top n.
        """
        assert request.query_vector is not None
        distance = Embedding.embedding.cosine_distance(unit(request.query_vector))
        filters = self._filters(request.destination_id)
        if request.model is not None:
            filters.append(Embedding.model == request.model)
        nearest = (
            select(*_chunk_columns(), (literal(1.0) - distance).label("score"))
            .where(self.owned(Embedding), Embedding.embedding.is_not(None), *filters)
            .order_by(distance)
            .limit(limit)
            .subquery("nearest")
        )
        statement = self._with_items(nearest).order_by(nearest.c.score.desc())
        if request.min_similarity is not None:
            statement = statement.where(nearest.c.score >= request.min_similarity)
        return await self._results(statement)

    async def by_text(
        self, query_text: str, limit: int, destination_id: uuid.UUID | None = None
    ) -> list[SearchResult]:
        """Chunks matching ``websearch_to_tsquery``, ranked by ``ts_rank_cd``.

        ``query_text`` is what :func:`distinct_websearch` made of the request's.
        """
        if not query_text:
            return []
        query = func.websearch_to_tsquery("english", query_text)
        return await self._ranked(query, limit, self._filters(destination_id))

    async def by_any_word(self, text: str, limit: int) -> list[SearchResult]:
        """Chunks sharing any of the first 32 distinct words of ``text``, ranked by
        ``ts_rank_cd``: more shared words rank higher.

        That suits conversational text, where requiring every word finds
        nothing; taking the first words, never refusing, suits a message of
        any length.
        """
        found = first_distinct_words(text)
        if not found:
            return []
        # Words are letters and digits only, so they cannot spell tsquery syntax.
        return await self._ranked(func.to_tsquery("english", " | ".join(found)), limit, [])

    async def _ranked(
        self, tsquery: ColumnElement[Any], limit: int, filters: list[ColumnElement[bool]]
    ) -> list[SearchResult]:
        # A scalar subquery (an InitPlan) parses the query once per execution: in
        # a generic plan of the prepared statement it would otherwise be parsed
        # again for every matching row (+50% on 10,000 rows of a 32-word query).
        query = select(tsquery).scalar_subquery()
        rank = func.ts_rank_cd(Embedding.tsv, query)
        matching = (
            select(*_chunk_columns(), rank.label("score"))
            .where(self.owned(Embedding), Embedding.tsv.bool_op("@@")(query), *filters)
            .order_by(rank.desc(), Embedding.id)
            .limit(limit)
            .subquery("matching")
        )
        return await self._results(
            self._with_items(matching).order_by(matching.c.score.desc(), matching.c.chunk_id)
        )

    def _filters(self, destination_id: uuid.UUID | None) -> list[ColumnElement[bool]]:
        if destination_id is None:
            return []
        return [Embedding.destination_id == destination_id]

    def _with_items(self, chunks: Any) -> Select[Any]:
        return select(chunks, ItemRow.title, ItemRow.source).join(
            ItemRow, and_(ItemRow.org_id == self.org_id, ItemRow.id == chunks.c.item_id)
        )

    async def _results(self, statement: Select[Any]) -> list[SearchResult]:
        rows = await self.session.execute(statement)
        return [SearchResult(**row._mapping) for row in rows]


def _chunk_columns() -> tuple[Any, ...]:
    return (
        Embedding.item_id,
        Embedding.id.label("chunk_id"),
        Embedding.chunk_index,
        Embedding.chunk_text,
    )
