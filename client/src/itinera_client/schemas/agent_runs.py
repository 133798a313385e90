"""Agent runs on the wire: the run, its tool log and its checkpoints.

The run's ``next_seq`` counter is an implementation detail and never sent.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from itinera_client.schemas.pagination import PageQuery
from itinera_client.schemas.types import JsonObject, LongText, Name

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Intent = Annotated[LongText, Meta(min_length=1)]
# The client's name of the thread a run works in (LangGraph's ``thread_id``), stored
# and matched as sent; only NUL, which PostgreSQL text cannot hold, is refused. Not a
# reference: a run may name a thread that does not exist (yet, or any more).
ThreadId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=255,
        pattern="^[^\x00]+$",
        description="the client's thread name: 1-255 characters, matched exactly",
        examples=["support/ticket-4711"],
    ),
]


class AgentRun(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    created_by: uuid.UUID
    status: RunStatus
    intent: str
    thread_id: str | None
    plan: dict[str, object]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class AgentRunCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new run starts ``queued``; its creator is the caller."""

    intent: Intent
    plan: JsonObject = msgspec.field(default_factory=dict)
    thread_id: ThreadId | None = None


class AgentRunUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``status`` moves the run along its lifecycle; ``plan`` is replaced whole."""

    status: RunStatus | UnsetType = UNSET
    plan: JsonObject | UnsetType = UNSET
    error: LongText | UnsetType | None = UNSET
    thread_id: ThreadId | UnsetType | None = UNSET


class AgentRunListQuery(PageQuery, kw_only=True, forbid_unknown_fields=True):
    user_id: uuid.UUID | None = None
    status: RunStatus | None = None
    thread_id: ThreadId | None = None


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    run_id: uuid.UUID
    seq: int
    tool: str
    input: dict[str, object]
    output: dict[str, object]
    created_at: datetime


class ToolCallCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    tool: Name
    input: JsonObject
    output: JsonObject


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    run_id: uuid.UUID
    sequence: int
    parent_id: uuid.UUID | None
    state: dict[str, object]
    metadata: dict[str, object]
    created_at: datetime


class CheckpointCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``parent_id`` names an earlier checkpoint of the same run."""

    state: JsonObject
    metadata: JsonObject = msgspec.field(default_factory=dict)
    parent_id: uuid.UUID | None = None
