from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from itinera.db.models.base import Base, Json, TenantMixin, created_at_column, updated_at_column


class Lead(TenantMixin, Base):
    """A captured sales lead; capturing the same (email, source) again updates it."""

    __tablename__ = "lead"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "chat_session_id"],
            ["chat_session.org_id", "chat_session.id"],
            ondelete="SET NULL (chat_session_id)",
        ),
        # Found by a deleted or swept session, whose leads lose the link.
        Index("ix_lead_org_id_chat_session_id", "org_id", "chat_session_id"),
        Index(
            "uq_lead_org_id_lower_email_source",
            "org_id",
            text("lower(email)"),
            "source",
            unique=True,
        ),
    )

    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(String(100))
    chat_session_id: Mapped[uuid.UUID | None]
    metadata_: Mapped[Json] = mapped_column("metadata", server_default="{}")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
