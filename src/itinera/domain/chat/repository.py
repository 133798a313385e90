"""Chat sessions live 24 h after their last message; expiry is enforced on every read.

An expired session is treated as gone (404) until the sweeper reclaims it, and
nothing revives it: the renewal itself only matches a live session.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, func, insert, select

from itinera.db.errors import translate_integrity_errors
from itinera.db.models import ChatMessage as MessageRow
from itinera.db.models import ChatSession as SessionRow
from itinera.db.models import new_id
from itinera.db.tenancy import TenantRepository
from itinera.domain.chat.schemas import ChatMessage, ChatSession
from itinera.errors import NotFoundError

# Added to the database's now(), never to the replica's clock.
SESSION_TTL = timedelta(hours=24)

SESSION_COLUMNS = tuple(SessionRow.__table__.c[name] for name in ChatSession.__struct_fields__)
MESSAGE_COLUMNS = tuple(MessageRow.__table__.c[name] for name in ChatMessage.__struct_fields__)


def _is_live() -> ColumnElement[bool]:
    return SessionRow.expires_at > func.now()


class ChatRepository(TenantRepository):
    async def create_session(self, created_by: uuid.UUID, profile: dict[str, Any]) -> ChatSession:
        statement = (
            insert(SessionRow)
            .values(
                org_id=self.org_id,
                id=new_id(),
                created_by=created_by,
                profile=profile,
                expires_at=func.now() + SESSION_TTL,
            )
            .returning(*SESSION_COLUMNS)
        )
        with translate_integrity_errors():
            row = (await self.session.execute(statement)).one()
        return ChatSession(**row._mapping)

    async def get_session(self, session_id: uuid.UUID) -> ChatSession | None:
        statement = self.select_from(SessionRow, *SESSION_COLUMNS).where(
            SessionRow.id == session_id, _is_live()
        )
        row = (await self.session.execute(statement)).first()
        return ChatSession(**row._mapping) if row else None

    async def list_sessions(
        self, *, limit: int, after: uuid.UUID | None, created_by: uuid.UUID | None
    ) -> tuple[list[ChatSession], uuid.UUID | None]:
        statement = self.select_from(SessionRow, *SESSION_COLUMNS).where(_is_live())
        if created_by is not None:
            statement = statement.where(SessionRow.created_by == created_by)
        rows, next_key = await self.fetch_page(statement, SessionRow.id, limit=limit, after=after)
        return [ChatSession(**row._mapping) for row in rows], next_key

    async def add_message(
        self, session_id: uuid.UUID, role: str, content: str, metadata: dict[str, Any]
    ) -> ChatMessage:
        """Renew the session's expiry, then store the message.

        The renewal is also the expiry check, in one statement: a missing,
        foreign or expired session matches nothing (404), so posting can never
        revive an expired session; and the renewed row stays locked until
        commit, so no sweeper can delete it before the message lands.
        """
        renewal = (
            self.update_of(SessionRow)
            .where(SessionRow.id == session_id, _is_live())
            .values(expires_at=func.now() + SESSION_TTL, updated_at=func.now())
            .returning(SessionRow.id)
        )
        if (await self.session.execute(renewal)).first() is None:
            raise NotFoundError("no such chat session")
        statement = (
            insert(MessageRow)
            .values(
                org_id=self.org_id,
                id=new_id(),
                session_id=session_id,
                role=role,
                content=content,
                metadata_=metadata,
            )
            .returning(*MESSAGE_COLUMNS)
        )
        with translate_integrity_errors():
            row = (await self.session.execute(statement)).one()
        return ChatMessage(**row._mapping)

    async def list_messages(
        self, session_id: uuid.UUID, *, limit: int, after: uuid.UUID | None
    ) -> tuple[list[ChatMessage], uuid.UUID | None]:
        """One page of a live session's messages, oldest first."""
        live = await self.session.scalar(
            select(exists().where(self.owned(SessionRow), SessionRow.id == session_id, _is_live()))
        )
        if not live:
            raise NotFoundError("no such chat session")
        statement = self.select_from(MessageRow, *MESSAGE_COLUMNS).where(
            MessageRow.session_id == session_id
        )
        rows, next_key = await self.fetch_page(
            statement, MessageRow.id, limit=limit, after=after, newest_first=False
        )
        return [ChatMessage(**row._mapping) for row in rows], next_key
