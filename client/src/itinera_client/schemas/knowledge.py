"""Knowledge items, their chunks, and retrieval on the wire. Vectors go in, never out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from itinera_client.schemas.pagination import PageQuery
from itinera_client.schemas.types import JsonObject

Source = Annotated[str, Meta(min_length=1, max_length=2048)]
# Any text of 1-255 characters (slashes, spaces, Unicode), stored and matched as
# sent; only NUL is refused, which PostgreSQL cannot store in text.
Key = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=255,
        pattern="^[^\x00]+$",
        description="the client's name for the item: 1-255 characters, matched exactly",
        examples=["guides/dahab/blue-hole.md"],
    ),
]
ItemTitle = Annotated[str, Meta(min_length=1, max_length=500)]
# Bounded well below PostgreSQL's 1 MB tsvector limit.
Body = Annotated[str, Meta(min_length=1, max_length=200_000)]
ChunkText = Annotated[str, Meta(min_length=1, max_length=20_000)]
ModelName = Annotated[str, Meta(min_length=1, max_length=200)]
# The OpenAPI document narrows these bounds to the configured dimension.
Vector = Annotated[
    list[float],
    Meta(
        min_length=1,
        max_length=2000,
        description="ITINERA_EMBEDDING_DIM finite numbers, not all zero",
        extra_json_schema={"x-embedding-vector": True},
    ),
]
# ts_rank_cd's work on every matching row grows with the query's operands: a
# search may hold this many distinct terms (words, with their sign), no more.
MAX_QUERY_TERMS = 32
QueryText = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=2000,
        description=f"websearch syntax; at most {MAX_QUERY_TERMS} distinct terms",
    ),
]


class ChunkIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    text: ChunkText
    vector: Vector | None = None
    model: ModelName | None = None


class KnowledgeCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An item to store. With a ``key`` it is an upsert: it replaces the org's item of
    that key, chunks and all; without one, content the org already has is not stored
    twice."""

    key: Key | None = None
    source: Source
    title: ItemTitle
    body: Body
    metadata: JsonObject = msgspec.field(default_factory=dict)
    destination_id: uuid.UUID | None = None
    chunks: Annotated[list[ChunkIn], Meta(min_length=1, max_length=1000)] | None = None


class Chunk(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    chunk_index: int
    text: str
    model: str | None
    has_vector: bool


class KnowledgeSummary(msgspec.Struct, frozen=True, kw_only=True):
    """An item without its chunks, as lists show it."""

    id: uuid.UUID
    key: str | None
    source: str
    title: str
    body: str
    metadata: dict[str, object]
    destination_id: uuid.UUID | None
    content_hash: Annotated[str, Meta(description="SHA-256 of the body, in hex")]
    created_at: datetime
    updated_at: datetime


class KnowledgeItem(KnowledgeSummary, frozen=True, kw_only=True):
    chunks: list[Chunk]


class KnowledgeListQuery(PageQuery, kw_only=True, forbid_unknown_fields=True):
    source: Source | None = None
    destination_id: uuid.UUID | None = None
    key: Key | None = None


class KnowledgeKeyQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    key: Key


MetadataFilter = Annotated[
    JsonObject, Meta(description="items whose metadata contains this object (JSON containment, @>)")
]


class SearchRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    query_text: Annotated[QueryText, Meta(examples=["Red Sea wreck dives"])] | None = None
    query_vector: Vector | None = None
    k: Annotated[int, Meta(ge=1, le=100, examples=[5])] = 10
    min_similarity: Annotated[float, Meta(ge=-1, le=1)] | None = None
    destination_id: uuid.UUID | None = None
    metadata: MetadataFilter | None = None
    model: ModelName | None = None

    @property
    def mode(self) -> Literal["vector", "text", "hybrid"]:
        if self.query_vector is not None and self.query_text is not None:
            return "hybrid"
        return "vector" if self.query_vector is not None else "text"


class SearchResult(msgspec.Struct, frozen=True, kw_only=True):
    item_id: uuid.UUID
    chunk_id: uuid.UUID
    chunk_index: int
    chunk_text: str
    score: float
    title: str
    source: str
    key: str | None
    metadata: dict[str, object]


class SearchResponse(msgspec.Struct, frozen=True, kw_only=True):
    results: list[SearchResult]
