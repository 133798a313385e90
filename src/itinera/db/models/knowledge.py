from __future__ import annotations

import uuid
from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    Computed,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from itinera.db.models.base import Base, Json, TenantMixin, created_at_column, updated_at_column


class KnowledgeItem(TenantMixin, Base):
    __tablename__ = "knowledge_item"
    __table_args__ = (
        UniqueConstraint("org_id", "content_hash"),
        # NULLs never collide: items without a key are not constrained.
        UniqueConstraint("org_id", "key"),
        ForeignKeyConstraint(
            ["org_id", "destination_id"],
            ["destination.org_id", "destination.id"],
            ondelete="SET NULL (destination_id)",
        ),
    )

    # The client's name for the item (1-255 characters, matched exactly), or None.
    key: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(2048))
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    metadata_: Mapped[Json] = mapped_column("metadata", server_default="{}")
    destination_id: Mapped[uuid.UUID | None]
    content_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class Embedding(TenantMixin, Base):
    """One chunk of a knowledge item, with its optional vector and its full-text vector.

    The vector's dimension is fixed by the migration that creates the table
    (``ITINERA_EMBEDDING_DIM`` at that time); the model leaves it open.
    """

    __tablename__ = "embedding"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "item_id"],
            ["knowledge_item.org_id", "knowledge_item.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["org_id", "destination_id"],
            ["destination.org_id", "destination.id"],
            ondelete="SET NULL (destination_id)",
        ),
        UniqueConstraint("org_id", "item_id", "chunk_index"),
        Index(
            "ix_embedding_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        Index("ix_embedding_tsv", "tsv", postgresql_using="gin"),
        Index("ix_embedding_org_id", "org_id"),
    )

    item_id: Mapped[uuid.UUID]
    chunk_index: Mapped[int] = mapped_column(Integer)
    chunk_text: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))
    embedding: Mapped[list[float] | None] = mapped_column(Vector())
    destination_id: Mapped[uuid.UUID | None]
    tsv: Mapped[str] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english'::regconfig, chunk_text)", persisted=True)
    )
    created_at: Mapped[datetime] = created_at_column()
