"""Chat sessions and their messages on the wire. A user message is answered with hits:
knowledge search results for its content."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from itinera_client.schemas.knowledge import SearchResult
from itinera_client.schemas.pagination import PageQuery
from itinera_client.schemas.types import JsonObject

ChatRole = Literal["user", "assistant", "system", "tool"]
# A turn of a conversation, possibly a long assistant answer; never empty.
Content = Annotated[str, Meta(min_length=1, max_length=100_000)]


class ChatSession(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    created_by: uuid.UUID | None
    profile: dict[str, object]
    expires_at: datetime
    created_at: datetime
    updated_at: datetime


class ChatSessionCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``profile`` describes the traveller, e.g. a diver's certification and logged dives."""

    profile: JsonObject = msgspec.field(default_factory=dict)


class ChatSessionListQuery(PageQuery, kw_only=True, forbid_unknown_fields=True):
    user_id: uuid.UUID | None = None


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    session_id: uuid.UUID
    role: ChatRole
    content: str
    metadata: dict[str, object]
    created_at: datetime


class ChatMessageCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    role: ChatRole
    content: Content
    metadata: JsonObject = msgspec.field(default_factory=dict)


class ChatMessagePosted(msgspec.Struct, frozen=True, kw_only=True):
    """The stored message, and for ``role: "user"`` the knowledge that matches it."""

    message: ChatMessage
    hits: list[SearchResult]
