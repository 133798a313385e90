from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from itinera.db.models.base import Base, Json, TenantMixin, created_at_column, updated_at_column


class Itinerary(TenantMixin, Base):
    """``version`` starts at 1 and grows by one per write; it is the ETag."""

    __tablename__ = "itinerary"
    __table_args__ = (
        ForeignKeyConstraint(["org_id", "created_by"], ["app_user.org_id", "app_user.id"]),
        ForeignKeyConstraint(
            ["org_id", "agent_run_id"],
            ["agent_run.org_id", "agent_run.id"],
            ondelete="SET NULL (agent_run_id)",
        ),
        ForeignKeyConstraint(
            ["org_id", "destination_id"],
            ["destination.org_id", "destination.id"],
            ondelete="SET NULL (destination_id)",
        ),
        CheckConstraint("start_date <= end_date", name="date_range"),
        CheckConstraint("status IN ('draft', 'final')", name="status"),
        Index("ix_itinerary_org_id_created_by_id", "org_id", "created_by", "id"),
        # The list filters, and the SET NULL a deleted run or destination fires.
        Index("ix_itinerary_org_id_agent_run_id_id", "org_id", "agent_run_id", "id"),
        Index("ix_itinerary_org_id_destination_id_id", "org_id", "destination_id", "id"),
        Index("ix_itinerary_status_updated_at", "status", "updated_at"),
        Index("ix_itinerary_status_end_date", "status", "end_date"),
    )

    created_by: Mapped[uuid.UUID]
    agent_run_id: Mapped[uuid.UUID | None]
    destination_id: Mapped[uuid.UUID | None]
    title: Mapped[str] = mapped_column(String(300))
    start_date: Mapped[date]
    end_date: Mapped[date]
    status: Mapped[str] = mapped_column(String(16))
    data: Mapped[Json] = mapped_column(server_default="{}")
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
