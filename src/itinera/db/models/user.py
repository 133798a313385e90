from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from itinera.db.models.base import Base, TenantMixin, created_at_column, updated_at_column


class AppUser(TenantMixin, Base):
    __tablename__ = "app_user"
    __table_args__ = (
        # Email is unique per org regardless of case.
        Index("uq_app_user_org_id_lower_email", "org_id", text("lower(email)"), unique=True),
        CheckConstraint("role IN ('member', 'admin')", name="role"),
    )

    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(server_default=false())
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class RefreshToken(TenantMixin, Base):
    """Only the SHA-256 of a token is kept. Tokens of one login share a family."""

    __tablename__ = "refresh_token"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "user_id"], ["app_user.org_id", "app_user.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("org_id", "token_hash"),
        Index("ix_refresh_token_org_id_family_id", "org_id", "family_id"),
        Index("ix_refresh_token_family_expires_at", "family_expires_at"),
        Index("ix_refresh_token_revoked_at", "revoked_at"),
    )

    user_id: Mapped[uuid.UUID]
    family_id: Mapped[uuid.UUID]
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    family_expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    replaced_by: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = created_at_column()
