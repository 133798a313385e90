"""Chat sessions live 24 h after their last message; expiry is enforced on every read.

An expired session is treated as gone (404) until the sweeper reclaims it, and
nothing revives it: the renewal itself only matches a live session. Deleting is
the exception: it erases a session whether or not it has expired, so an erasure
never waits for the sweeper. Its messages go first, in one set-based DELETE;
leads that link it keep their row and lose the link (the foreign key's
``SET NULL (chat_session_id)``, which leaves ``org_id`` alone).
"""

from __future__ import annotations

import functools
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, exists, func, insert, select, update

from itinera.db.models import ChatMessage as MessageRow
from itinera.db.models import ChatSession as SessionRow
from itinera.db.models import new_id
from itinera.db.prepared import Prepared
from itinera.db.repository import TenantRepository, paged
from itinera.errors import NotFoundError
from itinera_client.schemas.chat import ChatMessage, ChatSession

# Added to the database's now(), never to the replica's clock.
SESSION_TTL = timedelta(hours=24)

SESSION_COLUMNS = tuple(SessionRow.__table__.c[name] for name in ChatSession.__struct_fields__)
MESSAGE_COLUMNS = tuple(MessageRow.__table__.c[name] for name in ChatMessage.__struct_fields__)

_ORG = SessionRow.org_id == bindparam("org_id")
_SESSION = SessionRow.id == bindparam("session_id")
_LIVE = SessionRow.expires_at > func.now()

CREATE_SESSION = Prepared(
    insert(SessionRow)
    .values(
        org_id=bindparam("org_id"),
        id=bindparam("id"),
        created_by=bindparam("created_by"),
        profile=bindparam("profile"),
        expires_at=func.now() + SESSION_TTL,
    )
    .returning(*SESSION_COLUMNS)
)
GET_SESSION = Prepared(select(*SESSION_COLUMNS).where(_ORG, _SESSION, _LIVE))
SESSION_IS_LIVE = Prepared(select(exists().where(_ORG, _SESSION, _LIVE)))
DELETE_MESSAGES = Prepared(
    delete(MessageRow).where(
        MessageRow.org_id == bindparam("org_id"), MessageRow.session_id == bindparam("session_id")
    )
)
DELETE_SESSION = Prepared(delete(SessionRow).where(_ORG, _SESSION).returning(SessionRow.id))


def _add_message() -> Prepared:
    """Renew a live session and store a message in it, as one statement.

    The message is inserted from the renewal's RETURNING: a missing, foreign
    or expired session renews nothing and stores nothing (no row comes back).
    """
    renewed = (
        update(SessionRow)
        .where(_ORG, _SESSION, _LIVE)
        .values(expires_at=func.now() + SESSION_TTL, updated_at=func.now())
        .returning(SessionRow.org_id, SessionRow.id)
        .cte("renewed")
    )
    stored = (
        insert(MessageRow)
        .from_select(
            ["org_id", "id", "session_id", "role", "content", "metadata"],
            select(
                renewed.c.org_id,
                bindparam("id", type_=MessageRow.id.type),
                renewed.c.id,
                bindparam("role", type_=MessageRow.role.type),
                bindparam("content", type_=MessageRow.content.type),
                bindparam("metadata", type_=MessageRow.metadata_.type),
            ),
        )
        .returning(*MESSAGE_COLUMNS)
    )
    return Prepared(stored.add_cte(renewed))


ADD_MESSAGE = _add_message()


@functools.cache
def _list_sessions(by_creator: bool, after: bool) -> Prepared:
    statement = select(*SESSION_COLUMNS).where(_ORG, _LIVE)
    if by_creator:
        statement = statement.where(SessionRow.created_by == bindparam("created_by"))
    return paged(statement, SessionRow.id, after=after)


@functools.cache
def _list_messages(after: bool) -> Prepared:
    statement = select(*MESSAGE_COLUMNS).where(
        MessageRow.org_id == bindparam("org_id"), MessageRow.session_id == bindparam("session_id")
    )
    return paged(statement, MessageRow.id, after=after, newest_first=False)


class ChatRepository(TenantRepository):
    async def create_session(self, created_by: uuid.UUID, profile: dict[str, Any]) -> ChatSession:
        row = await self.one(CREATE_SESSION, id=new_id(), created_by=created_by, profile=profile)
        assert row is not None
        return ChatSession(**dict(row.items()))

    async def get_session(self, session_id: uuid.UUID) -> ChatSession | None:
        row = await self.one(GET_SESSION, session_id=session_id)
        return ChatSession(**dict(row.items())) if row else None

    async def list_sessions(
        self, *, limit: int, after: uuid.UUID | None, created_by: uuid.UUID | None
    ) -> tuple[list[ChatSession], uuid.UUID | None]:
        statement = _list_sessions(created_by is not None, after is not None)
        rows, next_key = await self.page(
            statement, "id", limit=limit, after=after, created_by=created_by
        )
        return [ChatSession(**dict(row.items())) for row in rows], next_key

    async def delete_session(self, session_id: uuid.UUID) -> None:
        """The session and its messages, expired or not."""
        await self.execute(DELETE_MESSAGES, session_id=session_id)
        if await self.one(DELETE_SESSION, session_id=session_id) is None:
            raise NotFoundError("no such chat session")

    async def add_message(
        self, session_id: uuid.UUID, role: str, content: str, metadata: dict[str, Any]
    ) -> ChatMessage:
        """Renew the session's expiry and store the message, in one statement.

        The renewal is also the expiry check: a missing, foreign or expired
        session matches nothing (404), so posting can never revive an expired
        session; and the renewed row stays locked until commit, so no sweeper
        can delete it before the message lands.
        """
        row = await self.one(
            ADD_MESSAGE,
            session_id=session_id,
            id=new_id(),
            role=role,
            content=content,
            metadata=metadata,
        )
        if row is None:
            raise NotFoundError("no such chat session")
        return ChatMessage(**dict(row.items()))

    async def list_messages(
        self, session_id: uuid.UUID, *, limit: int, after: uuid.UUID | None
    ) -> tuple[list[ChatMessage], uuid.UUID | None]:
        """One page of a live session's messages, oldest first."""
        if not await self.scalar(SESSION_IS_LIVE, session_id=session_id):
            raise NotFoundError("no such chat session")
        rows, next_key = await self.page(
            _list_messages(after is not None), "id", limit=limit, session_id=session_id, after=after
        )
        return [ChatMessage(**dict(row.items())) for row in rows], next_key
