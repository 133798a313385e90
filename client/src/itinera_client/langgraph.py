"""LangGraph's checkpointer over Itinera's threads: ``ItineraSaver``.

Each call LangGraph makes is one request to the service, which keeps the
state in PostgreSQL: a thread per ``thread_id`` of the org the credentials act
for, its checkpoints per namespace, the channel values by version and the
pending writes of each task. Values are serialised here, by the saver's
``serde`` (LangGraph's ``JsonPlusSerializer`` unless you pass another), and
travel as bytes in MessagePack bodies; the service stores them as they come.

A checkpoint travels without its channel values; beside it go the values of
the channels it wrote a new version of (LangGraph's ``new_versions``), and a
read rebuilds the rest from the versions the checkpoint names, as
``langgraph-checkpoint-postgres`` does (``itinera_client.langgraph_wire``).

Needs the ``langgraph`` extra: ``pip install 'itinera-client[langgraph]'``.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from itinera_client.adapter_clients import AdapterClients
from itinera_client.client import ItineraClient
from itinera_client.langgraph_wire import (
    Listing,
    address,
    checkpoint_put,
    checkpoint_tuple,
    delta_probe,
    prune_names,
    prunes,
    refuse_delta_threads,
    run_batches,
    saved_config,
    thread_copy,
    writes_put,
)
from itinera_client.resources.threads import SyncThreads, Threads
from itinera_client.sync import SyncItineraClient

__all__ = ["ItineraSaver"]


class ItineraSaver(AdapterClients, BaseCheckpointSaver[str]):
    """A LangGraph checkpointer (``BaseCheckpointSaver``) kept by an Itinera service.

    Give it ``client`` (an ``ItineraClient``, for the ``a*`` methods that
    ``ainvoke`` and ``astream`` use) and/or ``sync_client`` (a
    ``SyncItineraClient``, for the plain ones that ``invoke`` and ``stream``
    call from their worker threads), or ``base_url`` and ``api_key`` to have it
    make both. Clients you pass stay yours to close; the ones it makes are
    closed by ``close()`` (the sync one) and ``aclose()`` (both), or on leaving
    ``with`` / ``async with``.

    Every call is one request and takes a token from the caller's ``state``
    rate-limit bucket (``ITINERA_RATE_LIMIT_STATE_PER_MINUTE``). Nothing here
    takes a lock: calls from many tasks or threads run side by side, each on
    the client's connection pool.
    """

    def __init__(
        self,
        *,
        client: ItineraClient | None = None,
        sync_client: SyncItineraClient | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._use_clients(client, sync_client, base_url, api_key)
        self._threads = None if self.client is None else Threads(self.client)
        self._sync_threads = None if self.sync_client is None else SyncThreads(self.sync_client)

    # --- reading -----------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint of ``checkpoint_id``, or the newest of the thread's namespace."""
        found = self._sync().get(*address(config))
        return None if found is None else checkpoint_tuple(self.serde, found)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        found = await self._async().get(*address(config))
        return None if found is None else checkpoint_tuple(self.serde, found)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first: of the thread (and namespace, if the config names one),
        or of every thread of the org with ``config=None``; whose metadata contains
        ``filter``; older than ``before``; at most ``limit`` (None: all), a page of up to
        200 per request."""
        threads = self._sync()
        listing = Listing.of(config, filter, before, limit)
        while (query := listing.next_query()) is not None:
            for found in listing.take(threads.search(query)):
                yield checkpoint_tuple(self.serde, found)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        threads = self._async()
        listing = Listing.of(config, filter, before, limit)
        while (query := listing.next_query()) is not None:
            for found in listing.take(await threads.search(query)):
                yield checkpoint_tuple(self.serde, found)

    # --- writing -----------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save the checkpoint with the values of the channels in ``new_versions``."""
        put = checkpoint_put(self.serde, config, checkpoint, metadata, new_versions)
        self._sync().put_checkpoint(put)
        return saved_config(config, checkpoint)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        put = checkpoint_put(self.serde, config, checkpoint, metadata, new_versions)
        await self._async().put_checkpoint(put)
        return saved_config(config, checkpoint)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Save a task's writes against the checkpoint of ``config``: a retried task's
        writes are kept as first saved, except errors, interrupts and the like, which
        replace theirs."""
        if writes:
            self._sync().put_writes(writes_put(self.serde, config, writes, task_id, task_path))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if writes:
            put = writes_put(self.serde, config, writes, task_id, task_path)
            await self._async().put_writes(put)

    # --- deleting, copying, pruning ----------------------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread with all its state; a thread that is not there is no matter."""
        self._sync().delete(str(thread_id))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._async().delete(str(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete, in every thread of the org, the checkpoints whose metadata ``run_id`` is
        one of these, with their pending writes."""
        threads = self._sync()
        for runs in run_batches(run_ids):
            threads.delete_for_runs(runs)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        threads = self._async()
        for runs in run_batches(run_ids):
            await threads.delete_for_runs(runs)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, value and pending write of the source thread, ids kept,
        into the target (made if need be). A source that is not there copies nothing."""
        copy = thread_copy(source_thread_id, target_thread_id)
        if copy is not None:
            self._sync().copy(copy)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        copy = thread_copy(source_thread_id, target_thread_id)
        if copy is not None:
            await self._async().copy(copy)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: each namespace of the threads keeps its newest checkpoint, with
        its pending writes and the values it names; ``delete``: the threads go.

        Like LangGraph's Postgres saver, ``keep_latest`` refuses threads whose graph
        uses a ``DeltaChannel`` (NotImplementedError): their state lives in older
        checkpoints' writes. A thread that starts using one between that check
        and the prune is not caught.
        """
        names, keep_latest = prune_names(thread_ids, strategy)
        threads = self._sync()
        if keep_latest:
            refuse_delta_threads([n for n in names if threads.search(delta_probe(n)).items])
        for prune in prunes(names, keep_latest):
            threads.prune(prune)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        names, keep_latest = prune_names(thread_ids, strategy)
        threads = self._async()
        if keep_latest:
            refuse_delta_threads([n for n in names if (await threads.search(delta_probe(n))).items])
        for prune in prunes(names, keep_latest):
            await threads.prune(prune)

    # --- versions ----------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None) -> str:
        """As LangGraph's Postgres saver: a zero-padded counter, then a random fraction,
        so that versions compare as strings in the order they were made."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(current.split(".")[0])
        return f"{number + 1:032}.{random.random():016}"  # noqa: S311 - a tie-breaker, no secret

    # --- the clients ------------------------------------------------------------------

    def _sync(self) -> SyncThreads:
        if self._sync_threads is None:
            raise TypeError("this saver has no SyncItineraClient: use its async methods")
        return self._sync_threads

    def _async(self) -> Threads:
        if self._threads is None:
            raise TypeError("this saver has no ItineraClient: use its sync methods")
        return self._threads
