"""Threads for LangGraph on the wire: checkpoints, their channel values, pending writes.

Every value a checkpointer serialises travels as bytes with its serialiser's
type tag (LangGraph's ``serde.dumps_typed``), and comes back byte for byte. In
``application/msgpack`` bodies bytes are msgpack binaries; in JSON they are
base64 strings. Names and ids are the client's strings, stored as sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from itinera_client.schemas.pagination import Limit
from itinera_client.schemas.types import JsonObject

MSGPACK = "application/msgpack"

# PostgreSQL text cannot hold NUL; everything else is stored as sent.
_NO_NUL = "^[^\x00]*$"

ThreadName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=255,
        pattern=_NO_NUL,
        description="the client's name for the thread: 1-255 characters, matched exactly",
        examples=["support/ticket-4711"],
    ),
]
Namespace = Annotated[
    str,
    Meta(
        max_length=1024,
        pattern=_NO_NUL,
        description='the checkpoint namespace ("" is the root graph)',
        examples=[""],
    ),
]
CheckpointId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=255,
        pattern=_NO_NUL,
        description="the client's checkpoint id; ids of a thread are ordered as strings",
        examples=["1f0a6b4c-5d2e-6f10-8000-2b1e3c4d5e6f"],
    ),
]
Channel = Annotated[str, Meta(min_length=1, max_length=512, pattern=_NO_NUL)]
Version = Annotated[
    str, Meta(min_length=1, max_length=255, pattern=_NO_NUL, description="a channel version")
]
SerdeType = Annotated[
    str,
    Meta(
        max_length=255,
        pattern=_NO_NUL,
        description='the serialiser\'s type tag of the bytes (e.g. "msgpack", "empty")',
        examples=["msgpack"],
    ),
]
TaskId = Annotated[str, Meta(min_length=1, max_length=255, pattern=_NO_NUL)]
TaskPath = Annotated[str, Meta(max_length=2048, pattern=_NO_NUL)]
RunId = Annotated[str, Meta(min_length=1, max_length=255, pattern=_NO_NUL)]
# A position in a task's list of writes; LangGraph gives special channels
# (errors, interrupts, ...) negative ones, and those overwrite.
WriteIndex = Annotated[int, Meta(ge=-(2**31), le=2**31 - 1)]
MAX_BLOBS = 10_000
MAX_WRITES = 10_000
MAX_THREADS = 1000


class ChannelValue(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A channel's value at one version. ``value`` is None for a value-less tag
    (LangGraph's ``"empty"``)."""

    channel: Channel
    version: Version
    type: SerdeType
    value: bytes | None = None


class CheckpointPut(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A checkpoint to save, with the values of the channels it changed.

    ``checkpoint`` is the serialised checkpoint; its channel values travel apart,
    in ``values``, for the channels this checkpoint wrote a new version of. A read
    rebuilds them from ``channel_versions``: for each channel there, the value
    stored at that version in the namespace. Saving a known checkpoint id again
    replaces its checkpoint, metadata and versions (values already stored stay).
    """

    thread_id: ThreadName
    checkpoint_ns: Namespace = ""
    checkpoint_id: CheckpointId
    parent_checkpoint_id: CheckpointId | None = None
    type: SerdeType
    checkpoint: bytes
    metadata: Annotated[JsonObject, Meta(description="queryable JSON: list filters on any key")] = (
        msgspec.field(default_factory=dict)
    )
    channel_versions: Annotated[dict[Channel, Version], Meta(max_length=MAX_BLOBS)] = msgspec.field(
        default_factory=dict
    )
    values: Annotated[list[ChannelValue], Meta(max_length=MAX_BLOBS)] = msgspec.field(
        default_factory=list
    )


class CheckpointRef(msgspec.Struct, frozen=True, kw_only=True):
    """Where a saved checkpoint is: LangGraph's ``configurable`` of it."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str


class WriteIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    idx: Annotated[
        WriteIndex,
        Meta(
            description="position in the task's writes; negative for a special channel, "
            "which overwrites (others are kept as first saved)"
        ),
    ]
    channel: Channel
    type: SerdeType
    value: bytes


class WritesPut(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Pending writes of one task against a checkpoint, which may not be saved yet."""

    thread_id: ThreadName
    checkpoint_ns: Namespace = ""
    checkpoint_id: CheckpointId
    task_id: TaskId
    task_path: TaskPath = ""
    writes: Annotated[list[WriteIn], Meta(max_length=MAX_WRITES)]


class PendingWrite(msgspec.Struct, frozen=True, kw_only=True):
    task_id: str
    task_path: str
    idx: int
    channel: str
    type: str
    value: bytes


class CheckpointTuple(msgspec.Struct, frozen=True, kw_only=True):
    """A checkpoint with its channel values rebuilt and its pending writes (ordered by
    task path, task id, position: the order LangGraph applies them in)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str
    checkpoint: bytes
    metadata: dict[str, object]
    values: list[ChannelValue]
    pending_writes: list[PendingWrite]
    created_at: datetime


class CheckpointQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One checkpoint: the latest of the namespace, or the one with ``checkpoint_id``."""

    thread_id: ThreadName
    checkpoint_ns: Namespace = ""
    checkpoint_id: CheckpointId | None = None


class CheckpointSearch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Checkpoints newest first (by checkpoint id); without ``thread_id`` across all of
    the org's threads, without ``checkpoint_ns`` across all namespaces."""

    thread_id: ThreadName | None = None
    checkpoint_ns: Namespace | None = None
    checkpoint_id: CheckpointId | None = None
    filter: Annotated[
        JsonObject,
        Meta(description="checkpoints whose metadata contains this object (JSON containment)"),
    ] = msgspec.field(default_factory=dict)
    before: (
        Annotated[CheckpointId, Meta(description="only checkpoints whose id sorts before this one")]
        | None
    ) = None
    limit: Limit = 50
    cursor: Annotated[str, Meta(max_length=8192)] | None = None


class ThreadQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    thread_id: ThreadName


class ThreadCopy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Copy every checkpoint, value and pending write, ids kept, into the target thread
    (made if need be; rows it has already are kept)."""

    source_thread_id: ThreadName
    target_thread_id: ThreadName


class ThreadPrune(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``keep_latest``: each namespace keeps its newest checkpoint, with its values and
    pending writes. ``delete``: the threads go, with all their state."""

    thread_ids: Annotated[list[ThreadName], Meta(max_length=MAX_THREADS)]
    strategy: Literal["keep_latest", "delete"] = "keep_latest"


class RunsDelete(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Delete, in every thread of the org, the checkpoints whose metadata ``run_id`` is
    one of these, with their pending writes."""

    run_ids: Annotated[list[RunId], Meta(max_length=MAX_THREADS)]
