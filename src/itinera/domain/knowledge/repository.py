"""Knowledge items and their chunks: ingested in one transaction, deduplicated by content."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert

from itinera.db.errors import translate_integrity_errors
from itinera.db.models import Embedding, new_id
from itinera.db.models import KnowledgeItem as ItemRow
from itinera.db.tenancy import TenantRepository
from itinera.domain.knowledge.schemas import Chunk, ChunkIn, KnowledgeCreate, KnowledgeItem
from itinera.domain.knowledge.vectors import unit

ITEM_COLUMNS = (
    ItemRow.id,
    ItemRow.source,
    ItemRow.title,
    ItemRow.body,
    ItemRow.metadata_.label("metadata"),
    ItemRow.destination_id,
    ItemRow.content_hash,
    ItemRow.created_at,
    ItemRow.updated_at,
)
CHUNK_COLUMNS = (
    Embedding.id,
    Embedding.chunk_index,
    Embedding.chunk_text.label("text"),
    Embedding.model,
    Embedding.embedding.is_not(None).label("has_vector"),
)


def content_hash(body: str) -> bytes:
    """Two items with the same body are the same content, whatever their title or source."""
    return hashlib.sha256(body.encode()).digest()


class KnowledgeRepository(TenantRepository):
    async def ingest(self, item: KnowledgeCreate) -> tuple[KnowledgeItem, bool]:
        """Store the item and its chunks; returns (item, created).

        Content already in the org is not stored twice: the stored item comes back.
        """
        digest = content_hash(item.body)
        statement = (
            pg_insert(ItemRow)
            .values(
                org_id=self.org_id,
                id=new_id(),
                source=item.source,
                title=item.title,
                body=item.body,
                metadata_=item.metadata,
                destination_id=item.destination_id,
                content_hash=digest,
            )
            .on_conflict_do_nothing(index_elements=[ItemRow.org_id, ItemRow.content_hash])
            .returning(*ITEM_COLUMNS)
        )
        with translate_integrity_errors():
            row = (await self.session.execute(statement)).first()
        if row is None:
            existing = await self._get_by_hash(digest)
            assert existing is not None  # the conflict was on this very hash
            return existing, False
        chunks = item.chunks or [ChunkIn(text=item.body)]
        values: list[dict[str, Any]] = [
            {
                "org_id": self.org_id,
                "id": new_id(),
                "item_id": row.id,
                "chunk_index": index,
                "chunk_text": chunk.text,
                "model": chunk.model,
                "embedding": None if chunk.vector is None else unit(chunk.vector),
                "destination_id": item.destination_id,
            }
            for index, chunk in enumerate(chunks)
        ]
        await self.session.execute(insert(Embedding), values)
        stored = [
            Chunk(
                id=v["id"],
                chunk_index=v["chunk_index"],
                text=v["chunk_text"],
                model=v["model"],
                has_vector=v["embedding"] is not None,
            )
            for v in values
        ]
        return _item(row._mapping, stored), True

    async def get(self, item_id: uuid.UUID) -> KnowledgeItem | None:
        statement = self.select_from(ItemRow, *ITEM_COLUMNS).where(ItemRow.id == item_id)
        row = (await self.session.execute(statement)).first()
        if row is None:
            return None
        return _item(row._mapping, await self._chunks(item_id))

    async def delete(self, item_id: uuid.UUID) -> bool:
        statement = self.delete_from(ItemRow).where(ItemRow.id == item_id).returning(ItemRow.id)
        return (await self.session.execute(statement)).first() is not None

    async def _get_by_hash(self, digest: bytes) -> KnowledgeItem | None:
        statement = self.select_from(ItemRow, *ITEM_COLUMNS).where(ItemRow.content_hash == digest)
        row = (await self.session.execute(statement)).first()
        if row is None:
            return None
        return _item(row._mapping, await self._chunks(row.id))

    async def _chunks(self, item_id: uuid.UUID) -> list[Chunk]:
        statement = (
            self.select_from(Embedding, *CHUNK_COLUMNS)
            .where(Embedding.item_id == item_id)
            .order_by(Embedding.chunk_index)
        )
        return [Chunk(**row._mapping) for row in await self.session.execute(statement)]


def _item(row: Any, chunks: list[Chunk]) -> KnowledgeItem:
    fields = dict(row)
    fields["content_hash"] = fields["content_hash"].hex()
    return KnowledgeItem(**fields, chunks=chunks)
