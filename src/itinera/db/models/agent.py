from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from itinera.db.models.base import Base, Json, TenantMixin, created_at_column, updated_at_column


class AgentRun(TenantMixin, Base):
    """One agent run. ``next_seq`` numbers its tool calls and checkpoints."""

    __tablename__ = "agent_run"
    __table_args__ = (
        ForeignKeyConstraint(["org_id", "created_by"], ["app_user.org_id", "app_user.id"]),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="status"
        ),
        Index("ix_agent_run_org_id_created_by_id", "org_id", "created_by", "id"),
        Index("ix_agent_run_org_id_thread_id_id", "org_id", "thread_id", "id"),
        Index("ix_agent_run_created_at", "created_at"),
        Index("ix_agent_run_finished_at", "finished_at"),
    )

    created_by: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(16))
    intent: Mapped[str] = mapped_column(Text)
    # The client's thread name, not a key: threads and runs outlive each other.
    thread_id: Mapped[str | None] = mapped_column(Text)
    plan: Mapped[Json] = mapped_column(server_default="{}")
    error: Mapped[str | None] = mapped_column(Text)
    next_seq: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = updated_at_column()


class AgentToolCall(TenantMixin, Base):
    __tablename__ = "agent_tool_call"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "run_id"], ["agent_run.org_id", "agent_run.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("org_id", "run_id", "seq"),
    )

    run_id: Mapped[uuid.UUID]
    seq: Mapped[int] = mapped_column(Integer)
    tool: Mapped[str] = mapped_column(String(200))
    input: Mapped[Json]
    output: Mapped[Json]
    created_at: Mapped[datetime] = created_at_column()


class AgentCheckpoint(TenantMixin, Base):
    __tablename__ = "agent_checkpoint"
    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "run_id"], ["agent_run.org_id", "agent_run.id"], ondelete="CASCADE"
        ),
        # The parent is in the same run; deleting it only forgets the link.
        ForeignKeyConstraint(
            ["org_id", "run_id", "parent_id"],
            ["agent_checkpoint.org_id", "agent_checkpoint.run_id", "agent_checkpoint.id"],
            name="fk_agent_checkpoint_parent",
            ondelete="SET NULL (parent_id)",
        ),
        UniqueConstraint("org_id", "run_id", "sequence"),
        UniqueConstraint("org_id", "run_id", "id"),
        # Each deleted checkpoint's SET NULL looks up its children: without this,
        # deleting a run's n checkpoints reads n x n rows (5000 took 3 s).
        Index("ix_agent_checkpoint_org_id_run_id_parent_id", "org_id", "run_id", "parent_id"),
    )

    run_id: Mapped[uuid.UUID]
    sequence: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[uuid.UUID | None]
    state: Mapped[Json]
    metadata_: Mapped[Json] = mapped_column("metadata", server_default="{}")
    created_at: Mapped[datetime] = created_at_column()
