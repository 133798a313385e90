"""Knowledge items and their chunks: ingested in one statement, deduplicated by content.

An ingest is one round trip whatever its number of chunks: the item's INSERT
and the chunks' INSERT (from arrays, an element a chunk) are one statement,
and the chunks go in only when the item did.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import asyncpg
from pgvector import Vector
from sqlalchemy import ARRAY, String, Text, bindparam, delete, func, insert, select, true
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.types import UserDefinedType

from itinera.db.models import Embedding, new_id
from itinera.db.models import KnowledgeItem as ItemRow
from itinera.db.prepared import Prepared
from itinera.db.repository import TenantRepository
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


class VectorArray(UserDefinedType[list[Vector | None]]):
    """``vector[]``, bound as it comes: pgvector ``Vector`` elements (or None) that the
    binary codec on the service's connections encodes. An element cannot be a list of
    floats: the driver would read a list of lists as a two-dimensional array."""

    cache_ok = True
    render_bind_cast = True

    def get_col_spec(self, **kw: Any) -> str:
        return "VECTOR[]"


_ORG = ItemRow.org_id == bindparam("org_id")
_ID = ItemRow.id == bindparam("id")
_CHUNK_TARGETS = (
    "org_id",
    "id",
    "item_id",
    "chunk_index",
    "chunk_text",
    "model",
    "embedding",
    "destination_id",
)


def _ingest() -> Prepared:
    item = (
        pg_insert(ItemRow)
        .values(
            org_id=bindparam("org_id"),
            id=bindparam("id"),
            source=bindparam("source"),
            title=bindparam("title"),
            body=bindparam("body"),
            metadata_=bindparam("metadata"),
            destination_id=bindparam("destination_id"),
            content_hash=bindparam("content_hash"),
        )
        .on_conflict_do_nothing(index_elements=[ItemRow.org_id, ItemRow.content_hash])
        .returning(*ITEM_COLUMNS)
        .cte("item")
    )
    chunk = (
        func.unnest(
            bindparam("chunk_ids", type_=ARRAY(UUID(as_uuid=True))),
            bindparam("chunk_texts", type_=ARRAY(Text)),
            bindparam("chunk_models", type_=ARRAY(String)),
            bindparam("chunk_vectors", type_=VectorArray()),
        )
        .table_valued("id", "chunk_text", "model", "embedding", with_ordinality="ordinal")
        .render_derived(name="chunk")
    )
    chunks = (
        insert(Embedding)
        .from_select(
            _CHUNK_TARGETS,
            # Joined to the item's RETURNING: no row there (known content), no chunks.
            select(
                bindparam("org_id", type_=UUID(as_uuid=True)),
                chunk.c.id,
                item.c.id,
                chunk.c.ordinal - 1,
                chunk.c.chunk_text,
                chunk.c.model,
                chunk.c.embedding,
                item.c.destination_id,
            )
            .select_from(item)
            .join(chunk, true()),
        )
        .cte("chunks")
    )
    return Prepared(select(item).add_cte(chunks))


# The item and its chunks when the content is new; no row when the org has it already.
INGEST = _ingest()
GET = Prepared(select(*ITEM_COLUMNS).where(_ORG, _ID))
GET_BY_HASH = Prepared(
    select(*ITEM_COLUMNS).where(_ORG, ItemRow.content_hash == bindparam("content_hash"))
)
CHUNKS = Prepared(
    select(*CHUNK_COLUMNS)
    .where(Embedding.org_id == bindparam("org_id"), Embedding.item_id == bindparam("item_id"))
    .order_by(Embedding.chunk_index)
)
DELETE = Prepared(delete(ItemRow).where(_ORG, _ID))


def content_hash(body: str) -> bytes:
    """Two items with the same body are the same content, whatever their title or source."""
    return hashlib.sha256(body.encode()).digest()


class KnowledgeRepository(TenantRepository):
    async def ingest(self, item: KnowledgeCreate) -> tuple[KnowledgeItem, bool]:
        """Store the item and its chunks; returns (item, created).

        Content already in the org is not stored twice: the stored item comes back.
        """
        digest = content_hash(item.body)
        chunks = item.chunks or [ChunkIn(text=item.body)]
        ids = [new_id() for _ in chunks]
        vectors = [None if c.vector is None else Vector(unit(c.vector)) for c in chunks]
        row = await self.one(
            INGEST,
            id=new_id(),
            source=item.source,
            title=item.title,
            body=item.body,
            metadata=item.metadata,
            destination_id=item.destination_id,
            content_hash=digest,
            chunk_ids=ids,
            chunk_texts=[chunk.text for chunk in chunks],
            chunk_models=[chunk.model for chunk in chunks],
            chunk_vectors=vectors,
        )
        if row is None:
            existing = await self._get(GET_BY_HASH, content_hash=digest)
            assert existing is not None  # the conflict was on this very hash
            return existing, False
        stored = [
            Chunk(
                id=chunk_id,
                chunk_index=index,
                text=chunk.text,
                model=chunk.model,
                has_vector=vector is not None,
            )
            for index, (chunk_id, chunk, vector) in enumerate(
                zip(ids, chunks, vectors, strict=True)
            )
        ]
        return _item(row, stored), True

    async def get(self, item_id: uuid.UUID) -> KnowledgeItem | None:
        return await self._get(GET, id=item_id)

    async def delete(self, item_id: uuid.UUID) -> bool:
        return await self.execute(DELETE, id=item_id) > 0

    async def _get(self, statement: Prepared, **params: Any) -> KnowledgeItem | None:
        row = await self.one(statement, **params)
        if row is None:
            return None
        chunks = await self.all(CHUNKS, item_id=row["id"])
        return _item(row, [Chunk(**dict(chunk.items())) for chunk in chunks])


def _item(row: asyncpg.Record, chunks: list[Chunk]) -> KnowledgeItem:
    fields = dict(row.items())
    fields["content_hash"] = fields["content_hash"].hex()
    return KnowledgeItem(**fields, chunks=chunks)
