from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, Index, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from itinera.db.models.base import Base, Json, OrgScoped, created_at_column


class IdempotencyRecord(OrgScoped, Base):
    """The stored response of one idempotent request, keyed by (org, user, key)."""

    __tablename__ = "idempotency_record"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "user_id"], ["app_user.org_id", "app_user.id"], ondelete="CASCADE"
        ),
        Index("ix_idempotency_record_expires_at", "expires_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    status: Mapped[int] = mapped_column(SmallInteger)
    headers: Mapped[Json]
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime]
