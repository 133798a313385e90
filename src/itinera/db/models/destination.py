from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from itinera.db.models.base import Base, Json, TenantMixin, created_at_column, updated_at_column


class Destination(TenantMixin, Base):
    __tablename__ = "destination"
    __table_args__ = (
        UniqueConstraint("org_id", "slug"),
        CheckConstraint("lat BETWEEN -90 AND 90", name="lat"),
        CheckConstraint("lon BETWEEN -180 AND 180", name="lon"),
        CheckConstraint("country ~ '^[A-Z]{2}$'", name="country"),
    )

    slug: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    timezone: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, server_default="")
    metadata_: Mapped[Json] = mapped_column("metadata", server_default="{}")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class DiveSite(TenantMixin, Base):
    __tablename__ = "dive_site"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "destination_id"],
            ["destination.org_id", "destination.id"],
            ondelete="CASCADE",
        ),
        Index("ix_dive_site_org_id_destination_id", "org_id", "destination_id"),
        CheckConstraint("min_depth_m >= 0 AND min_depth_m <= max_depth_m", name="depth_range"),
        CheckConstraint(
            "difficulty IN ('beginner', 'intermediate', 'advanced')", name="difficulty"
        ),
        CheckConstraint("lat BETWEEN -90 AND 90", name="lat"),
        CheckConstraint("lon BETWEEN -180 AND 180", name="lon"),
    )

    destination_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(String(200))
    min_depth_m: Mapped[float] = mapped_column(Float)
    max_depth_m: Mapped[float] = mapped_column(Float)
    difficulty: Mapped[str] = mapped_column(String(16))
    min_certification: Mapped[str | None] = mapped_column(String(100))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    metadata_: Mapped[Json] = mapped_column("metadata", server_default="{}")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
