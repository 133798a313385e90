"""Agent runs: their lifecycle, tool log and checkpoints."""

from __future__ import annotations

import uuid

from itinera_client.calls import AsyncRunner, Call, SyncRunner, json_of, nothing, query
from itinera_client.schemas.agent_runs import (
    AgentRun,
    AgentRunCreate,
    AgentRunListQuery,
    AgentRunUpdate,
    Checkpoint,
    CheckpointCreate,
    RunStatus,
    ToolCall,
    ToolCallCreate,
)
from itinera_client.schemas.pagination import Page, PageQuery


def _create(run: AgentRunCreate) -> Call[AgentRun]:
    return Call("POST", "/v1/agent-runs", json_of(AgentRun), body=run)


def _list(filters: AgentRunListQuery) -> Call[Page[AgentRun]]:
    return Call("GET", "/v1/agent-runs", json_of(Page[AgentRun]), params=query(filters))


def _get(run_id: uuid.UUID) -> Call[AgentRun]:
    return Call("GET", f"/v1/agent-runs/{run_id}", json_of(AgentRun))


def _update(run_id: uuid.UUID, changes: AgentRunUpdate) -> Call[AgentRun]:
    return Call("PATCH", f"/v1/agent-runs/{run_id}", json_of(AgentRun), body=changes)


def _delete(run_id: uuid.UUID) -> Call[None]:
    return Call("DELETE", f"/v1/agent-runs/{run_id}", nothing)


def _append_tool_call(run_id: uuid.UUID, tool_call: ToolCallCreate) -> Call[ToolCall]:
    path = f"/v1/agent-runs/{run_id}/tool-log"
    return Call("POST", path, json_of(ToolCall), body=tool_call)


def _tool_log(run_id: uuid.UUID, page: PageQuery) -> Call[Page[ToolCall]]:
    path = f"/v1/agent-runs/{run_id}/tool-log"
    return Call("GET", path, json_of(Page[ToolCall]), params=query(page))


def _append_checkpoint(run_id: uuid.UUID, checkpoint: CheckpointCreate) -> Call[Checkpoint]:
    path = f"/v1/agent-runs/{run_id}/checkpoints"
    return Call("POST", path, json_of(Checkpoint), body=checkpoint)


def _checkpoints(run_id: uuid.UUID, page: PageQuery) -> Call[Page[Checkpoint]]:
    path = f"/v1/agent-runs/{run_id}/checkpoints"
    return Call("GET", path, json_of(Page[Checkpoint]), params=query(page))


def _checkpoint(run_id: uuid.UUID, checkpoint_id: uuid.UUID) -> Call[Checkpoint]:
    return Call("GET", f"/v1/agent-runs/{run_id}/checkpoints/{checkpoint_id}", json_of(Checkpoint))


def _latest_checkpoint(run_id: uuid.UUID) -> Call[Checkpoint]:
    return Call("GET", f"/v1/agent-runs/{run_id}/checkpoints/latest", json_of(Checkpoint))


class AgentRuns:
    """``client.agent_runs``. A run moves ``queued → running → succeeded | failed |
    cancelled`` (or ``queued → cancelled``); a finished run takes no more appends."""

    def __init__(self, client: AsyncRunner) -> None:
        self._client = client

    async def create(self, run: AgentRunCreate) -> AgentRun:
        """A new run, ``queued``, created by the caller (the ``agent`` rate limit applies)."""
        return await self._client.run(_create(run))

    async def list(
        self,
        *,
        user_id: uuid.UUID | None = None,
        status: RunStatus | None = None,
        thread_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AgentRun]:
        """Newest first; ``user_id``: created by that user; ``thread_id``: naming that thread."""
        filters = AgentRunListQuery(
            user_id=user_id, status=status, thread_id=thread_id, limit=limit, cursor=cursor
        )
        return await self._client.run(_list(filters))

    async def get(self, run_id: uuid.UUID) -> AgentRun:
        return await self._client.run(_get(run_id))

    async def update(self, run_id: uuid.UUID, changes: AgentRunUpdate) -> AgentRun:
        """Move the run along its lifecycle, replace its plan, record its error."""
        return await self._client.run(_update(run_id, changes))

    async def delete(self, run_id: uuid.UUID) -> None:
        """Delete the run with its tool calls and checkpoints; the thread it names stays."""
        await self._client.run(_delete(run_id))

    async def append_tool_call(self, run_id: uuid.UUID, tool_call: ToolCallCreate) -> ToolCall:
        return await self._client.run(_append_tool_call(run_id, tool_call))

    async def tool_log(
        self, run_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ToolCall]:
        """The run's tool calls, oldest first."""
        return await self._client.run(_tool_log(run_id, PageQuery(limit=limit, cursor=cursor)))

    async def append_checkpoint(
        self, run_id: uuid.UUID, checkpoint: CheckpointCreate
    ) -> Checkpoint:
        return await self._client.run(_append_checkpoint(run_id, checkpoint))

    async def checkpoints(
        self, run_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Checkpoint]:
        """The run's checkpoints, oldest first."""
        page = PageQuery(limit=limit, cursor=cursor)
        return await self._client.run(_checkpoints(run_id, page))

    async def checkpoint(self, run_id: uuid.UUID, checkpoint_id: uuid.UUID) -> Checkpoint:
        """One checkpoint of the run, by its id."""
        return await self._client.run(_checkpoint(run_id, checkpoint_id))

    async def latest_checkpoint(self, run_id: uuid.UUID) -> Checkpoint:
        return await self._client.run(_latest_checkpoint(run_id))


class SyncAgentRuns:
    """``sync_client.agent_runs``: what ``AgentRuns`` does, blocking."""

    def __init__(self, client: SyncRunner) -> None:
        self._client = client

    def create(self, run: AgentRunCreate) -> AgentRun:
        return self._client.run(_create(run))

    def list(
        self,
        *,
        user_id: uuid.UUID | None = None,
        status: RunStatus | None = None,
        thread_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[AgentRun]:
        filters = AgentRunListQuery(
            user_id=user_id, status=status, thread_id=thread_id, limit=limit, cursor=cursor
        )
        return self._client.run(_list(filters))

    def get(self, run_id: uuid.UUID) -> AgentRun:
        return self._client.run(_get(run_id))

    def update(self, run_id: uuid.UUID, changes: AgentRunUpdate) -> AgentRun:
        return self._client.run(_update(run_id, changes))

    def delete(self, run_id: uuid.UUID) -> None:
        self._client.run(_delete(run_id))

    def append_tool_call(self, run_id: uuid.UUID, tool_call: ToolCallCreate) -> ToolCall:
        return self._client.run(_append_tool_call(run_id, tool_call))

    def tool_log(
        self, run_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ToolCall]:
        return self._client.run(_tool_log(run_id, PageQuery(limit=limit, cursor=cursor)))

    def append_checkpoint(self, run_id: uuid.UUID, checkpoint: CheckpointCreate) -> Checkpoint:
        return self._client.run(_append_checkpoint(run_id, checkpoint))

    def checkpoints(
        self, run_id: uuid.UUID, *, limit: int = 50, cursor: str | None = None
    ) -> Page[Checkpoint]:
        return self._client.run(_checkpoints(run_id, PageQuery(limit=limit, cursor=cursor)))

    def checkpoint(self, run_id: uuid.UUID, checkpoint_id: uuid.UUID) -> Checkpoint:
        return self._client.run(_checkpoint(run_id, checkpoint_id))

    def latest_checkpoint(self, run_id: uuid.UUID) -> Checkpoint:
        return self._client.run(_latest_checkpoint(run_id))
