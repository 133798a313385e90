"""Knowledge items and their chunks: deduplicated by content, or upserted by key.

An item without a key is one round trip whatever its number of chunks: the
item's INSERT and the chunks' INSERT (from arrays, an element a chunk) are one
statement, and the chunks go in only when the item did.

An item with a key is two: the item's upsert on (org, key), which leaves the
row locked until the transaction ends, then one statement that deletes the
item's chunks and inserts the new ones. They cannot be one: a statement sees
the data as it was when it began, so chunks a concurrent writer of the same
key committed while the upsert waited for its lock would escape the delete.
The second statement begins after the lock is ours and sees them all; the
writers of one key take turns, and each leaves exactly its own chunks.

Keyed items are never deduplicated by content, yet the unique
(org_id, content_hash) rule of migration 0001 still holds: their stored hash is
of the key and the body (:func:`stored_hash`). The wire's ``content_hash`` is
always the SHA-256 of the body.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from typing import Any

import asyncpg
from pgvector.utils import Vector
from sqlalchemy import (
    ARRAY,
    Boolean,
    String,
    Text,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.types import UserDefinedType

from itinera.db.models import Embedding, new_id
from itinera.db.models import KnowledgeItem as ItemRow
from itinera.db.prepared import Prepared
from itinera.db.repository import TenantRepository, paged
from itinera.domain.knowledge.vectors import unit
from itinera_client.schemas.knowledge import (
    Chunk,
    ChunkIn,
    KnowledgeCreate,
    KnowledgeItem,
    KnowledgeSummary,
)

ITEM_COLUMNS = (
    ItemRow.id,
    ItemRow.key,
    ItemRow.source,
    ItemRow.title,
    ItemRow.body,
    ItemRow.metadata_.label("metadata"),
    ItemRow.destination_id,
    # A keyed item stores a hash of its key and body; the wire shows the body's.
    case(
        (ItemRow.key.is_(None), ItemRow.content_hash),
        else_=func.sha256(func.convert_to(ItemRow.body, literal_column("'UTF8'"))),
    ).label("content_hash"),
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


def _new_chunks() -> Any:
    """The request's chunks from arrays, an element a chunk, numbered from 1."""
    return (
        func.unnest(
            bindparam("chunk_ids", type_=ARRAY(UUID(as_uuid=True))),
            bindparam("chunk_texts", type_=ARRAY(Text)),
            bindparam("chunk_models", type_=ARRAY(String)),
            bindparam("chunk_vectors", type_=VectorArray()),
        )
        .table_valued("id", "chunk_text", "model", "embedding", with_ordinality="ordinal")
        .render_derived(name="chunk")
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
    chunk = _new_chunks()
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


def _upsert() -> Prepared:
    """The keyed item, inserted or (its key known) overwritten in place, id and
    ``created_at`` kept; ``created`` tells which. Either way the row stays locked to
    the end of the transaction: a concurrent writer of the key waits here."""
    values: dict[str, Any] = {
        name: bindparam(name)
        for name in ("source", "title", "body", "destination_id", "content_hash")
    }
    statement = pg_insert(ItemRow).values(
        org_id=bindparam("org_id"),
        id=bindparam("id"),
        key=bindparam("key"),
        metadata_=bindparam("metadata"),
        **values,
    )
    overwritten = {name: statement.excluded[name] for name in values}
    return Prepared(
        statement.on_conflict_do_update(
            index_elements=[ItemRow.org_id, ItemRow.key],
            set_={
                **overwritten,
                "metadata": statement.excluded.metadata,
                "updated_at": func.now(),
            },
        ).returning(
            *ITEM_COLUMNS,
            # The inserted row version has no xmax; the one ON CONFLICT DO UPDATE
            # wrote carries this transaction's id as its locker.
            literal_column("knowledge_item.xmax = 0", Boolean).label("created"),
        )
    )


def _replace_chunks() -> Prepared:
    """Delete ``:item_id``'s chunks and insert the request's, in one statement.

    Statements in WITH run in no set order, and the new chunks reuse the old
    ones' (item, chunk_index): the insert reads a count of the deleted rows
    first (an InitPlan, evaluated before its first row), so every old chunk is
    gone before a new one goes in. Rows this transaction deleted are no
    conflict for the unique index.
    """
    old = (
        delete(Embedding)
        .where(Embedding.org_id == bindparam("org_id"), Embedding.item_id == bindparam("item_id"))
        .returning(Embedding.id)
        .cte("old")
    )
    chunk = _new_chunks()
    item_id = bindparam("item_id", type_=UUID(as_uuid=True))
    rows = select(
        bindparam("org_id", type_=UUID(as_uuid=True)),
        chunk.c.id,
        item_id,
        chunk.c.ordinal - 1,
        chunk.c.chunk_text,
        chunk.c.model,
        chunk.c.embedding,
        bindparam("destination_id", type_=UUID(as_uuid=True)),
    ).where(select(func.count()).select_from(old).scalar_subquery() >= 0)
    return Prepared(insert(Embedding).from_select(_CHUNK_TARGETS, rows).add_cte(old))


@functools.cache
def _list(by_source: bool, by_destination: bool, by_key: bool, after: bool) -> Prepared:
    statement = select(*ITEM_COLUMNS).where(_ORG)
    if by_source:
        statement = statement.where(ItemRow.source == bindparam("source"))
    if by_destination:
        statement = statement.where(ItemRow.destination_id == bindparam("destination_id"))
    if by_key:
        statement = statement.where(ItemRow.key == bindparam("key"))
    return paged(statement, ItemRow.id, after=after)


# The item and its chunks when the content is new; no row when the org has it already.
INGEST = _ingest()
UPSERT = _upsert()
REPLACE_CHUNKS = _replace_chunks()
_KEY = ItemRow.key == bindparam("key")
GET_BY_KEY = Prepared(select(*ITEM_COLUMNS).where(_ORG, _KEY))
DELETE_BY_KEY = Prepared(delete(ItemRow).where(_ORG, _KEY))
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


def stored_hash(key: str, body: str) -> bytes:
    """What a keyed item stores as its content hash: unique to its key in the org, and
    never a body's hash (the preimage starts with NUL, which no stored body holds;
    neither can a key, so the key ends at the next NUL)."""
    return hashlib.sha256(b"\0key\0" + key.encode() + b"\0" + body.encode()).digest()


class KnowledgeRepository(TenantRepository):
    async def ingest(self, item: KnowledgeCreate) -> tuple[KnowledgeItem, bool]:
        """Store the item and its chunks; returns (item, created).

        With a key, the org's item of that key is replaced, chunks and all
        (created is False then). Without one, content already in the org is not
        stored twice: the stored item comes back.
        """
        chunks = item.chunks or [ChunkIn(text=item.body)]
        ids = [new_id() for _ in chunks]
        vectors = [None if c.vector is None else Vector(unit(c.vector)) for c in chunks]
        fields: dict[str, Any] = {
            "source": item.source,
            "title": item.title,
            "body": item.body,
            "metadata": item.metadata,
            "destination_id": item.destination_id,
        }
        arrays: dict[str, Any] = {
            "chunk_ids": ids,
            "chunk_texts": [chunk.text for chunk in chunks],
            "chunk_models": [chunk.model for chunk in chunks],
            "chunk_vectors": vectors,
        }
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
        if item.key is not None:
            row = await self.one(
                UPSERT,
                id=new_id(),
                key=item.key,
                content_hash=stored_hash(item.key, item.body),
                **fields,
            )
            assert row is not None  # an upsert always yields its row
            await self.execute(
                REPLACE_CHUNKS,
                item_id=row["id"],
                destination_id=item.destination_id,
                **arrays,
            )
            return _item(row, stored), row["created"]
        digest = content_hash(item.body)
        row = await self.one(INGEST, id=new_id(), content_hash=digest, **fields, **arrays)
        if row is None:
            existing = await self._get(GET_BY_HASH, content_hash=digest)
            assert existing is not None  # the conflict was on this very hash
            return existing, False
        return _item(row, stored), True

    async def list(
        self,
        *,
        limit: int,
        after: uuid.UUID | None,
        source: str | None,
        destination_id: uuid.UUID | None,
        key: str | None,
    ) -> tuple[list[KnowledgeSummary], uuid.UUID | None]:
        """The org's items, newest first, without their chunks."""
        statement = _list(
            source is not None, destination_id is not None, key is not None, after is not None
        )
        rows, next_key = await self.page(
            statement,
            "id",
            limit=limit,
            after=after,
            source=source,
            destination_id=destination_id,
            key=key,
        )
        return [_summary(row) for row in rows], next_key

    async def get_by_key(self, key: str) -> KnowledgeItem | None:
        return await self._get(GET_BY_KEY, key=key)

    async def delete_by_key(self, key: str) -> bool:
        return await self.execute(DELETE_BY_KEY, key=key) > 0

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


_SUMMARY_FIELDS = KnowledgeSummary.__struct_fields__


def _fields(row: asyncpg.Record) -> dict[str, Any]:
    fields = {name: row[name] for name in _SUMMARY_FIELDS}
    fields["content_hash"] = fields["content_hash"].hex()
    return fields


def _summary(row: asyncpg.Record) -> KnowledgeSummary:
    return KnowledgeSummary(**_fields(row))


def _item(row: asyncpg.Record, chunks: list[Chunk]) -> KnowledgeItem:
    return KnowledgeItem(**_fields(row), chunks=chunks)
