"""LangGraph's own conformance suite (langgraph-checkpoint-conformance), every capability,
base and extended, through ItineraSaver's async methods and again through its sync ones,
against a live service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.conformance.capabilities import (
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
)
from langgraph.checkpoint.conformance.initializer import checkpointer_test
from langgraph.checkpoint.conformance.report import CapabilityReport
from langgraph.checkpoint.conformance.validate import validate

from itinera_client import ItineraClient, SyncItineraClient
from itinera_client.langgraph import ItineraSaver
from tests.support.live_service import LiveService

# What the suite (0.0.2) runs per capability, 81 checks: all of them must pass.
CHECKS = {
    "put": 17,
    "put_writes": 10,
    "get_tuple": 10,
    "list": 16,
    "delete_thread": 5,
    "delete_for_runs": 7,
    "copy_thread": 8,
    "prune": 8,
}


class ThroughSyncMethods(BaseCheckpointSaver[str]):
    """The suite calls a saver's async methods: these call ItineraSaver's sync ones, each
    in a worker thread, as LangGraph's ``invoke`` calls them."""

    def __init__(self, saver: ItineraSaver) -> None:
        super().__init__(serde=saver.serde)
        self.saver = saver

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.saver.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        def listed() -> list[CheckpointTuple]:
            return list(self.saver.list(config, filter=filter, before=before, limit=limit))

        for found in await asyncio.to_thread(listed):
            yield found

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.saver.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.saver.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.saver.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.saver.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.saver.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.saver.prune, thread_ids, strategy=strategy)

    def get_next_version(self, current: str | None, channel: None) -> str:
        return self.saver.get_next_version(current, channel)


def assert_all_passed(report: CapabilityReport) -> None:
    results = report.results
    failures = {name: r.failures for name, r in results.items() if not r.passed}
    assert failures == {}
    assert set(results) == {c.value for c in BASE_CAPABILITIES | EXTENDED_CAPABILITIES}
    assert {name: r.tests_passed for name, r in results.items()} == CHECKS
    assert all(
        r.detected and r.tests_failed == 0 and r.tests_skipped == 0 for r in results.values()
    )
    assert report.passed_all_base()
    assert report.conformance_level() == "FULL"


async def test_the_async_methods_pass_every_check_of_the_suite(
    live_tenant: LiveService, api_key: str
) -> None:
    @checkpointer_test(name="ItineraSaver (async)")
    async def saver() -> AsyncIterator[ItineraSaver]:
        # The async face alone: a stray sync call would raise.
        async with ItineraClient(live_tenant.base_url, api_key=api_key) as client:
            yield ItineraSaver(client=client)

    assert_all_passed(await validate(saver))


async def test_the_sync_methods_pass_every_check_of_the_suite(
    live_tenant: LiveService, api_key: str
) -> None:
    @checkpointer_test(name="ItineraSaver (sync)")
    async def saver() -> AsyncIterator[ThroughSyncMethods]:
        with SyncItineraClient(live_tenant.base_url, api_key=api_key) as client:
            yield ThroughSyncMethods(ItineraSaver(sync_client=client))

    assert_all_passed(await validate(saver))
