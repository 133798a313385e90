"""Threads for LangGraph: checkpoints per namespace, channel values by version, pending writes.

A thread is named by the client (unique per org) and has an id of its own, which
its rows carry instead of the name. Checkpoint ids, versions, task ids and
serialiser type tags are the client's strings, stored as sent; the values are
opaque bytes. Checkpoint ids are compared as strings (LangGraph orders by them),
so they, and the task paths and ids that order pending writes, use the "C"
collation: code-point order, whatever the database's locale.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, Index, Integer, LargeBinary, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from itinera.db.models.base import Base, Json, OrgScoped, TenantMixin, created_at_column


def _code_point_text() -> Text:
    """Text compared in code-point order, as Python compares the client's strings."""
    return Text(collation="C")


class Thread(TenantMixin, Base):
    __tablename__ = "thread"
    __table_args__ = (
        UniqueConstraint("org_id", "name"),
        # Retention finds threads by the age of their last checkpoint.
        Index("ix_thread_last_checkpoint_at", "last_checkpoint_at"),
    )

    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    # Moved on by a saved checkpoint (at most once a minute); creation until then.
    last_checkpoint_at: Mapped[datetime] = created_at_column()


def _in_thread() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["org_id", "thread_id"], ["thread.org_id", "thread.id"], ondelete="CASCADE"
    )


class ThreadCheckpoint(OrgScoped, Base):
    """One checkpoint: the client's serialised checkpoint without its channel values,
    which are rebuilt from the blobs its ``channel_versions`` name."""

    __tablename__ = "thread_checkpoint"
    __table_args__ = (
        _in_thread(),
        # Metadata filters are JSON containment (@>) on any key.
        Index(
            "ix_thread_checkpoint_metadata",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ),
    )

    thread_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    checkpoint_ns: Mapped[str] = mapped_column(Text, primary_key=True)
    checkpoint_id: Mapped[str] = mapped_column(_code_point_text(), primary_key=True)
    parent_checkpoint_id: Mapped[str | None] = mapped_column(_code_point_text())
    type: Mapped[str] = mapped_column(Text)
    checkpoint: Mapped[bytes] = mapped_column(LargeBinary)
    metadata_: Mapped[Json] = mapped_column("metadata", server_default="{}")
    channel_versions: Mapped[Json] = mapped_column(server_default="{}")
    created_at: Mapped[datetime] = created_at_column()


class ThreadBlob(OrgScoped, Base):
    """A channel's value at one version, shared by every checkpoint of the namespace
    that names that version."""

    __tablename__ = "thread_blob"
    __table_args__ = (_in_thread(),)

    thread_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    checkpoint_ns: Mapped[str] = mapped_column(Text, primary_key=True)
    channel: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[str] = mapped_column(Text, primary_key=True)
    type: Mapped[str] = mapped_column(Text)
    blob: Mapped[bytes | None] = mapped_column(LargeBinary)


class ThreadWrite(OrgScoped, Base):
    """A pending write of a task, by position. It may arrive before its checkpoint, so it
    refers to the thread only."""

    __tablename__ = "thread_write"
    __table_args__ = (_in_thread(),)

    thread_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    checkpoint_ns: Mapped[str] = mapped_column(Text, primary_key=True)
    checkpoint_id: Mapped[str] = mapped_column(_code_point_text(), primary_key=True)
    task_id: Mapped[str] = mapped_column(_code_point_text(), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_path: Mapped[str] = mapped_column(_code_point_text(), server_default="")
    channel: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
