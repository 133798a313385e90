"""Retrieval over a tenant's chunks: vector (HNSW), full text, or both fused by RRF."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, and_, cast, func, literal, select
from sqlalchemy.dialects.postgresql import TSQUERY

from itinera.db.models import Embedding
from itinera.db.models import KnowledgeItem as ItemRow
from itinera.db.tenancy import TenantRepository
from itinera.db.unit_of_work import UnitOfWork
from itinera.domain.knowledge.schemas import SearchRequest, SearchResult
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
        if request.mode == "vector":
            return await self.by_vector(request, request.k)
        if request.mode == "text":
            assert request.query_text is not None
            return await self.by_text(request, request.k)
        depth = fusion_depth(request.k)
        legs = [await self.by_vector(request, depth), await self.by_text(request, depth)]
        return reciprocal_rank_fusion(legs, request.k)

    async def by_vector(self, request: SearchRequest, limit: int) -> list[SearchResult]:
        """Nearest chunks by cosine similarity ``1 - (a <=> b)``.

        The inner query is the index's shape (ORDER BY distance LIMIT n);
        iterative scans may return it slightly out of order, so the outer
        query sorts again. ``min_similarity`` applies after the top n.
        """
        assert request.query_vector is not None
        distance = Embedding.embedding.cosine_distance(unit(request.query_vector))
        filters = self._filters(request)
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
        self, request: SearchRequest, limit: int, *, any_word: bool = False
    ) -> list[SearchResult]:
        """Chunks matching ``websearch_to_tsquery``, ranked by ``ts_rank_cd``.

        With ``any_word`` a chunk needs only one of the words (the words of
        ``plainto_tsquery`` joined by OR); more shared words still rank higher.
        That suits conversational text, where requiring every word finds nothing.
        """
        query: ColumnElement[Any]
        if any_word:
            words = cast(func.plainto_tsquery("english", request.query_text), Text)
            query = cast(func.replace(words, "&", "|"), TSQUERY)
        else:
            query = func.websearch_to_tsquery("english", request.query_text)
        rank = func.ts_rank_cd(Embedding.tsv, query)
        matching = (
            select(*_chunk_columns(), rank.label("score"))
            .where(
                self.owned(Embedding), Embedding.tsv.bool_op("@@")(query), *self._filters(request)
            )
            .order_by(rank.desc(), Embedding.id)
            .limit(limit)
            .subquery("matching")
        )
        return await self._results(
            self._with_items(matching).order_by(matching.c.score.desc(), matching.c.chunk_id)
        )

    def _filters(self, request: SearchRequest) -> list[ColumnElement[bool]]:
        if request.destination_id is None:
            return []
        return [Embedding.destination_id == request.destination_id]

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
