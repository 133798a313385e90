"""LangGraph's checkpoints, writes and lists in the wire form of the service's thread
routes (``itinera_client.schemas.threads``), and back: what ``ItineraSaver`` sends and
reads, apart from how it is sent.

Values are serialised by the saver's ``serde`` (``dumps_typed``: a type tag and
bytes) and travel as they come out. A checkpoint travels without its channel
values; beside it go the values of the channels it wrote a new version of
(LangGraph's ``new_versions``), and a read rebuilds the rest from the versions
the checkpoint names.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from itinera_client.schemas import threads as wire
from itinera_client.schemas.pagination import Page

PRUNE_STRATEGIES = ("keep_latest", "delete")
# The longest page the search route answers, and the most names one request takes.
_PAGE = 200
_BATCH = wire.MAX_THREADS
# A thread whose graph uses a DeltaChannel counts its updates in its checkpoints'
# metadata. An empty object is contained in any object: this filter finds them.
_DELTA_FILTER: dict[str, Any] = {"counters_since_delta_snapshot": {}}


def checkpoint_put(
    serde: SerializerProtocol,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
) -> wire.CheckpointPut:
    """``put``'s arguments as the body of ``POST /v1/threads/checkpoints``."""
    conf = config["configurable"]
    values = checkpoint["channel_values"]
    type_, blob = serde.dumps_typed({k: v for k, v in checkpoint.items() if k != "channel_values"})
    # A channel LangGraph versioned but holds no value for (emptied) is not sent: a
    # read finds nothing at that version and leaves the channel out, as it would for a
    # stored "empty".
    changed = []
    for channel, version in new_versions.items():
        if channel in values:
            value_type, value = serde.dumps_typed(values[channel])
            changed.append(
                wire.ChannelValue(
                    channel=channel, version=str(version), type=value_type, value=value
                )
            )
    return wire.CheckpointPut(
        thread_id=str(conf["thread_id"]),
        checkpoint_ns=conf.get("checkpoint_ns") or "",
        checkpoint_id=checkpoint["id"],
        parent_checkpoint_id=conf.get("checkpoint_id"),
        type=type_,
        checkpoint=blob,
        metadata=dict(get_serializable_checkpoint_metadata(config, metadata)),
        channel_versions={k: str(v) for k, v in checkpoint["channel_versions"].items()},
        values=changed,
    )


def writes_put(
    serde: SerializerProtocol,
    config: RunnableConfig,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
) -> wire.WritesPut:
    """``put_writes``'s arguments as the body of ``POST /v1/threads/writes``."""
    conf = config["configurable"]
    # Special channels share fixed negative positions: of two writes to one, the later
    # one stands, as a later save of it would replace it.
    by_idx: dict[int, wire.WriteIn] = {}
    for idx, (channel, value) in enumerate(writes):
        value_type, blob = serde.dumps_typed(value)
        index = WRITES_IDX_MAP.get(channel, idx)
        by_idx[index] = wire.WriteIn(idx=index, channel=channel, type=value_type, value=blob)
    return wire.WritesPut(
        thread_id=str(conf["thread_id"]),
        checkpoint_ns=conf.get("checkpoint_ns") or "",
        checkpoint_id=conf["checkpoint_id"],
        task_id=task_id,
        task_path=task_path,
        writes=list(by_idx.values()),
    )


def checkpoint_tuple(serde: SerializerProtocol, found: wire.CheckpointTuple) -> CheckpointTuple:
    """A tuple the service answered, as LangGraph's, its values and writes deserialised."""
    loads = serde.loads_typed
    checkpoint: Checkpoint = loads((found.type, found.checkpoint))
    checkpoint["channel_values"] = {
        v.channel: loads((v.type, v.value))
        for v in found.values
        if v.value is not None and v.type != "empty"
    }
    where = {"thread_id": found.thread_id, "checkpoint_ns": found.checkpoint_ns}
    parent = found.parent_checkpoint_id
    return CheckpointTuple(
        config={"configurable": {**where, "checkpoint_id": found.checkpoint_id}},
        checkpoint=checkpoint,
        metadata=found.metadata,  # type: ignore[arg-type]
        parent_config=(
            None if parent is None else {"configurable": {**where, "checkpoint_id": parent}}
        ),
        pending_writes=[
            (w.task_id, w.channel, loads((w.type, w.value))) for w in found.pending_writes
        ],
    )


@dataclass(slots=True)
class Listing:
    """A list's requests, page after page, until ``left`` (None: no limit) runs out or
    the service has no next page."""

    query: wire.CheckpointSearch
    left: int | None
    done: bool = False

    @classmethod
    def of(
        cls,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Listing:
        """``list``'s arguments: without a config, every thread of the org; without a
        namespace in it, every namespace."""
        conf = (config or {}).get("configurable") or {}
        thread_id = conf.get("thread_id")
        query = wire.CheckpointSearch(
            thread_id=None if thread_id is None else str(thread_id),
            checkpoint_ns=conf.get("checkpoint_ns"),
            checkpoint_id=conf.get("checkpoint_id"),
            filter=filter or {},
            before=None if before is None else get_checkpoint_id(before),
        )
        return cls(query, limit)

    def next_query(self) -> wire.CheckpointSearch | None:
        if self.done or (self.left is not None and self.left <= 0):
            return None
        size = _PAGE if self.left is None else min(self.left, _PAGE)
        return msgspec.structs.replace(self.query, limit=size)

    def take(self, page: Page[wire.CheckpointTuple]) -> list[wire.CheckpointTuple]:
        items = page.items
        if self.left is not None:
            items = items[: self.left]
            self.left -= len(items)
        if page.next_cursor is None:
            self.done = True
        else:
            self.query = msgspec.structs.replace(self.query, cursor=page.next_cursor)
        return items


def address(config: RunnableConfig) -> tuple[str, str, str | None]:
    """Thread, namespace and checkpoint id (None: the latest) of a ``get_tuple``."""
    conf = config["configurable"]
    return str(conf["thread_id"]), conf.get("checkpoint_ns") or "", get_checkpoint_id(config)


def saved_config(config: RunnableConfig, checkpoint: Checkpoint) -> RunnableConfig:
    """What ``put`` answers: where the checkpoint now is."""
    conf = config["configurable"]
    return {
        "configurable": {
            "thread_id": conf["thread_id"],
            "checkpoint_ns": conf.get("checkpoint_ns") or "",
            "checkpoint_id": checkpoint["id"],
        }
    }


def run_batches(run_ids: Sequence[str]) -> Iterator[wire.RunsDelete]:
    for batch in _batches(run_ids):
        yield wire.RunsDelete(run_ids=batch)


def thread_copy(source: str, target: str) -> wire.ThreadCopy | None:
    """None when there is nothing to do: a thread copied onto itself keeps what it has."""
    if str(source) == str(target):
        return None
    return wire.ThreadCopy(source_thread_id=str(source), target_thread_id=str(target))


def prune_names(thread_ids: Sequence[str], strategy: str) -> tuple[list[str], bool]:
    """The names, each once, and whether to keep the latest checkpoints (else delete)."""
    if isinstance(thread_ids, str):
        raise TypeError("thread_ids must be a sequence of thread IDs, not a str")
    if strategy not in PRUNE_STRATEGIES:
        raise ValueError(f"Unknown prune strategy: {strategy!r}")
    return list(dict.fromkeys(str(name) for name in thread_ids)), strategy == "keep_latest"


def prunes(names: list[str], keep_latest: bool) -> Iterator[wire.ThreadPrune]:
    strategy: Literal["keep_latest", "delete"] = "keep_latest" if keep_latest else "delete"
    for batch in _batches(names):
        yield wire.ThreadPrune(thread_ids=batch, strategy=strategy)


def delta_probe(thread_id: str) -> wire.CheckpointSearch:
    """A search that finds a checkpoint of the thread if its graph uses a DeltaChannel."""
    return wire.CheckpointSearch(thread_id=thread_id, filter=_DELTA_FILTER, limit=1)


def refuse_delta_threads(names: list[str]) -> None:
    if names:
        raise NotImplementedError(
            f"keep_latest can't prune threads that use a DeltaChannel: {', '.join(sorted(names))}"
        )


def _batches(names: Sequence[str]) -> Iterator[list[str]]:
    if isinstance(names, str):
        raise TypeError("give a sequence of ids, not a str")
    unique = list(dict.fromkeys(str(name) for name in names))
    for start in range(0, len(unique), _BATCH):
        yield unique[start : start + _BATCH]
