"""Chat sessions and their messages. A session expires 24 h after its last message."""

from __future__ import annotations

import uuid

from itinera_client.calls import AsyncRunner, Call, SyncRunner, json_of, nothing, query
from itinera_client.schemas.chat import (
    ChatMessage,
    ChatMessageCreate,
    ChatMessagePosted,
    ChatSession,
    ChatSessionCreate,
    ChatSessionListQuery,
)
from itinera_client.schemas.pagination import Page, PageQuery


def _create_session(session: ChatSessionCreate | None) -> Call[ChatSession]:
    body = session or ChatSessionCreate()
    return Call("POST", "/v1/chat/sessions", json_of(ChatSession), body=body)


def _sessions(filters: ChatSessionListQuery) -> Call[Page[ChatSession]]:
    return Call("GET", "/v1/chat/sessions", json_of(Page[ChatSession]), params=query(filters))


def _get_session(session_id: uuid.UUID) -> Call[ChatSession]:
    return Call("GET", f"/v1/chat/sessions/{session_id}", json_of(ChatSession))


def _delete_session(session_id: uuid.UUID) -> Call[None]:
    return Call("DELETE", f"/v1/chat/sessions/{session_id}", nothing)


def _post_message(session_id: uuid.UUID, message: ChatMessageCreate) -> Call[ChatMessagePosted]:
    path = f"/v1/chat/sessions/{session_id}/messages"
    return Call("POST", path, json_of(ChatMessagePosted), body=message)


def _messages(session_id: uuid.UUID, page: PageQuery) -> Call[Page[ChatMessage]]:
    path = f"/v1/chat/sessions/{session_id}/messages"
    return Call("GET", path, json_of(Page[ChatMessage]), params=query(page))


class Chat:
    """``client.chat``."""

    def __init__(self, client: AsyncRunner) -> None:
        self._client = client

    async def create_session(self, session: ChatSessionCreate | None = None) -> ChatSession:
        return await self._client.run(_create_session(session))

    async def sessions(
        self, *, user_id: uuid.UUID | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[ChatSession]:
        filters = ChatSessionListQuery(user_id=user_id, limit=limit, cursor=cursor)
        return await self._client.run(_sessions(filters))

    async def get_session(self, session_id: uuid.UUID) -> ChatSession:
        return await self._client.run(_get_session(session_id))

    async def delete_session(self, session_id: uuid.UUID) -> None:
        """Delete the session (expired or not) and its messages; leads that link it keep
        their data and lose the link."""
        await self._client.run(_delete_session(session_id))

    async def post_message(
        self, session_id: uuid.UUID, message: ChatMessageCreate
    ) -> ChatMessagePosted:
        """Store a message; a ``user`` message comes back with knowledge hits for its content
        (and takes a token of the ``agent`` rate limit)."""
        return await self._client.run(_post_message(session_id, message))

    async def messages(
        self, session_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ChatMessage]:
        """The session's messages, oldest first."""
        page = PageQuery(limit=limit, cursor=cursor)
        return await self._client.run(_messages(session_id, page))


class SyncChat:
    """``sync_client.chat``: what ``Chat`` does, blocking."""

    def __init__(self, client: SyncRunner) -> None:
        self._client = client

    def create_session(self, session: ChatSessionCreate | None = None) -> ChatSession:
        return self._client.run(_create_session(session))

    def sessions(
        self, *, user_id: uuid.UUID | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[ChatSession]:
        filters = ChatSessionListQuery(user_id=user_id, limit=limit, cursor=cursor)
        return self._client.run(_sessions(filters))

    def get_session(self, session_id: uuid.UUID) -> ChatSession:
        return self._client.run(_get_session(session_id))

    def delete_session(self, session_id: uuid.UUID) -> None:
        self._client.run(_delete_session(session_id))

    def post_message(self, session_id: uuid.UUID, message: ChatMessageCreate) -> ChatMessagePosted:
        return self._client.run(_post_message(session_id, message))

    def messages(
        self, session_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ChatMessage]:
        return self._client.run(_messages(session_id, PageQuery(limit=limit, cursor=cursor)))
