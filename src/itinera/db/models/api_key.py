"""API keys of machine clients: only the SHA-256 of a key is kept."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from itinera.db.models.base import Base, TenantMixin, created_at_column


class ApiKey(TenantMixin, Base):
    """A key acts as its user, with the user's rights as they are when each request starts.

    Revoking sets ``revoked_at`` (the row stays, for the audit of who had a
    key); ``last_used_at`` is written at most once a minute (migration 0004).
    """

    __tablename__ = "api_key"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "user_id"], ["app_user.org_id", "app_user.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("org_id", "key_hash"),
        Index("ix_api_key_org_id_user_id", "org_id", "user_id"),
    )

    user_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
