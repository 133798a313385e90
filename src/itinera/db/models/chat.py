from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from itinera.db.models.base import Base, Json, TenantMixin, created_at_column, updated_at_column


class ChatSession(TenantMixin, Base):
    __tablename__ = "chat_session"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "created_by"],
            ["app_user.org_id", "app_user.id"],
            ondelete="SET NULL (created_by)",
        ),
        Index("ix_chat_session_org_id_created_by_id", "org_id", "created_by", "id"),
        Index("ix_chat_session_expires_at", "expires_at"),
    )

    created_by: Mapped[uuid.UUID | None]
    profile: Mapped[Json] = mapped_column(server_default="{}")
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class ChatMessage(TenantMixin, Base):
    __tablename__ = "chat_message"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "session_id"],
            ["chat_session.org_id", "chat_session.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("role IN ('user', 'assistant', 'system', 'tool')", name="role"),
        Index("ix_chat_message_org_id_session_id_id", "org_id", "session_id", "id"),
    )

    session_id: Mapped[uuid.UUID]
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    metadata_: Mapped[Json] = mapped_column("metadata", server_default="{}")
    created_at: Mapped[datetime] = created_at_column()
