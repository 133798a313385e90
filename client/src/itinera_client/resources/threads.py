"""Threads for LangGraph: checkpoints, their channel values and pending writes, in
MessagePack both ways (bytes travel as bytes, not as base64 in JSON).

What ``itinera_client.langgraph.ItineraSaver`` sends: one request per saver call.
Every write here is idempotent by its own keys (a checkpoint id saved again
replaces itself, a task's writes keep their first copy, a deleted thread stays
deleted), so these calls go without an ``Idempotency-Key``: the service would
spend two more database round trips and a stored record on each save for
nothing. A call the service answers "not now" (429, 503) is still sent again.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import msgspec

from itinera_client.calls import AsyncRunner, Call, Reader, SyncRunner, nothing
from itinera_client.errors import NotFoundError
from itinera_client.schemas.pagination import Page
from itinera_client.schemas.threads import (
    MSGPACK,
    CheckpointPut,
    CheckpointSearch,
    CheckpointTuple,
    RunsDelete,
    ThreadCopy,
    ThreadPrune,
    WritesPut,
)

T = TypeVar("T")

_MSGPACK_HEADERS = {"Content-Type": MSGPACK, "Accept": MSGPACK}
_encoder = msgspec.msgpack.Encoder()
_decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}


class RepeatableCall(Call[T]):
    """A call whose effect is the same however often it is sent: no Idempotency-Key."""

    __slots__ = ()

    @property
    def is_unsafe(self) -> bool:
        return False


def msgpack_of(type_: type[T]) -> Reader[T]:
    """Read the answer's MessagePack as ``type_``."""
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders.setdefault(type_, msgspec.msgpack.Decoder(type_))

    def read(response: httpx.Response) -> T:
        return decoder.decode(response.content)  # type: ignore[no-any-return]

    return read


def _post(path: str, body: msgspec.Struct, read: Reader[T]) -> Call[T]:
    return RepeatableCall(
        "POST", path, read, content=_encoder.encode(body), headers=_MSGPACK_HEADERS
    )


def _put_checkpoint(put: CheckpointPut) -> Call[None]:
    return _post("/v1/threads/checkpoints", put, nothing)


def _put_writes(put: WritesPut) -> Call[None]:
    return _post("/v1/threads/writes", put, nothing)


def _get(thread_id: str, checkpoint_ns: str, checkpoint_id: str | None) -> Call[CheckpointTuple]:
    params = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
    if checkpoint_id is not None:
        params["checkpoint_id"] = checkpoint_id
    return Call(
        "GET",
        "/v1/threads/checkpoint",
        msgpack_of(CheckpointTuple),
        params=params,
        headers=_MSGPACK_HEADERS,
    )


def _search(query: CheckpointSearch) -> Call[Page[CheckpointTuple]]:
    return _post("/v1/threads/checkpoints/search", query, msgpack_of(Page[CheckpointTuple]))


def _delete(thread_id: str) -> Call[None]:
    return RepeatableCall("DELETE", "/v1/threads", nothing, params={"thread_id": thread_id})


def _copy(copy: ThreadCopy) -> Call[None]:
    return _post("/v1/threads/copy", copy, nothing)


def _prune(prune: ThreadPrune) -> Call[None]:
    return _post("/v1/threads/prune", prune, nothing)


def _delete_for_runs(runs: RunsDelete) -> Call[None]:
    return _post("/v1/threads/delete-for-runs", runs, nothing)


class Threads:
    """The thread routes from async code (``Threads(client)``)."""

    def __init__(self, client: AsyncRunner) -> None:
        self._client = client

    async def put_checkpoint(self, put: CheckpointPut) -> None:
        await self._client.run(_put_checkpoint(put))

    async def put_writes(self, put: WritesPut) -> None:
        await self._client.run(_put_writes(put))

    async def get(
        self, thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None
    ) -> CheckpointTuple | None:
        """The checkpoint of that id, or the newest of the namespace; None if there is none."""
        try:
            return await self._client.run(_get(thread_id, checkpoint_ns, checkpoint_id))
        except NotFoundError:
            return None

    async def search(self, query: CheckpointSearch) -> Page[CheckpointTuple]:
        return await self._client.run(_search(query))

    async def delete(self, thread_id: str) -> bool:
        """False when the org has no such thread."""
        try:
            await self._client.run(_delete(thread_id))
        except NotFoundError:
            return False
        return True

    async def copy(self, copy: ThreadCopy) -> bool:
        """False when the org has no thread of the source's name (nothing is made then)."""
        try:
            await self._client.run(_copy(copy))
        except NotFoundError:
            return False
        return True

    async def prune(self, prune: ThreadPrune) -> None:
        await self._client.run(_prune(prune))

    async def delete_for_runs(self, runs: RunsDelete) -> None:
        await self._client.run(_delete_for_runs(runs))


class SyncThreads:
    """What ``Threads`` does, blocking (``SyncThreads(sync_client)``)."""

    def __init__(self, client: SyncRunner) -> None:
        self._client = client

    def put_checkpoint(self, put: CheckpointPut) -> None:
        self._client.run(_put_checkpoint(put))

    def put_writes(self, put: WritesPut) -> None:
        self._client.run(_put_writes(put))

    def get(
        self, thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None
    ) -> CheckpointTuple | None:
        try:
            return self._client.run(_get(thread_id, checkpoint_ns, checkpoint_id))
        except NotFoundError:
            return None

    def search(self, query: CheckpointSearch) -> Page[CheckpointTuple]:
        return self._client.run(_search(query))

    def delete(self, thread_id: str) -> bool:
        try:
            self._client.run(_delete(thread_id))
        except NotFoundError:
            return False
        return True

    def copy(self, copy: ThreadCopy) -> bool:
        try:
            self._client.run(_copy(copy))
        except NotFoundError:
            return False
        return True

    def prune(self, prune: ThreadPrune) -> None:
        self._client.run(_prune(prune))

    def delete_for_runs(self, runs: RunsDelete) -> None:
        self._client.run(_delete_for_runs(runs))
