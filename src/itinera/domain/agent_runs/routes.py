from __future__ import annotations

import uuid

from starlette.responses import Response

from itinera.domain.agent_runs.repository import AgentRunRepository
from itinera.domain.changes import changes_of
from itinera.errors import NotFoundError
from itinera.http import JSONResponse
from itinera.routing import Api, Context, Idempotency
from itinera_client.schemas.agent_runs import (
    AgentRun,
    AgentRunCreate,
    AgentRunListQuery,
    AgentRunUpdate,
    Checkpoint,
    CheckpointCreate,
    ToolCall,
    ToolCallCreate,
)
from itinera_client.schemas.pagination import Page, PageQuery

api = Api(tag="agent runs")


def _repository(ctx: Context) -> AgentRunRepository:
    return ctx.repository(AgentRunRepository)


@api.get("/v1/agent-runs", summary="List agent runs, newest first", response=Page[AgentRun])
async def list_agent_runs(ctx: Context, query: AgentRunListQuery) -> Response:
    runs, next_key = await _repository(ctx).list(
        limit=query.limit,
        after=ctx.after(query.cursor, uuid.UUID),
        created_by=query.user_id,
        status=query.status,
        thread_id=query.thread_id,
    )
    return JSONResponse(ctx.page(runs, next_key))


@api.post(
    "/v1/agent-runs",
    summary="Start an agent run (queued)",
    response=AgentRun,
    status=201,
    bucket="agent",
    idempotency=Idempotency.REQUIRED,
)
async def create_agent_run(ctx: Context, body: AgentRunCreate) -> Response:
    run = await _repository(ctx).create(
        ctx.principal.user_id, body.intent, body.plan, body.thread_id
    )
    return JSONResponse(run, status_code=201, headers={"Location": f"/v1/agent-runs/{run.id}"})


@api.get("/v1/agent-runs/{id:uuid}", summary="One agent run", response=AgentRun, statuses=(404,))
async def get_agent_run(ctx: Context) -> Response:
    run = await _repository(ctx).get(ctx.path_id())
    if run is None:
        raise NotFoundError("no such agent run")
    return JSONResponse(run)


@api.patch(
    "/v1/agent-runs/{id:uuid}",
    summary="Move a run along its lifecycle, or change its plan or error",
    response=AgentRun,
    statuses=(404, 409),
)
async def update_agent_run(ctx: Context, body: AgentRunUpdate) -> Response:
    runs = _repository(ctx)
    changes = changes_of(body)
    run = await runs.update(ctx.path_id(), changes) if changes else await runs.get(ctx.path_id())
    if run is None:
        raise NotFoundError("no such agent run")
    return JSONResponse(run)


@api.delete(
    "/v1/agent-runs/{id:uuid}",
    summary="Delete a run with its tool calls and checkpoints (its thread stays)",
    statuses=(404,),
)
async def delete_agent_run(ctx: Context) -> Response:
    await _repository(ctx).delete(ctx.path_id())
    return Response(status_code=204)


@api.get(
    "/v1/agent-runs/{id:uuid}/tool-log",
    summary="A run's tool calls, oldest first",
    response=Page[ToolCall],
    statuses=(404,),
)
async def list_tool_calls(ctx: Context, query: PageQuery) -> Response:
    calls, next_key = await _repository(ctx).tool_calls(
        ctx.path_id(), limit=query.limit, after=ctx.after(query.cursor, int)
    )
    return JSONResponse(ctx.page(calls, next_key))


@api.post(
    "/v1/agent-runs/{id:uuid}/tool-log",
    summary="Append a tool call to an unfinished run",
    response=ToolCall,
    status=201,
    statuses=(404, 409),
)
async def append_tool_call(ctx: Context, body: ToolCallCreate) -> Response:
    call = await _repository(ctx).append_tool_call(
        ctx.path_id(), body.tool, body.input, body.output
    )
    # A tool call has no URL of its own: point at the log that holds it.
    location = f"/v1/agent-runs/{call.run_id}/tool-log"
    return JSONResponse(call, status_code=201, headers={"Location": location})


@api.get(
    "/v1/agent-runs/{id:uuid}/checkpoints",
    summary="A run's checkpoints, oldest first",
    response=Page[Checkpoint],
    statuses=(404,),
)
async def list_checkpoints(ctx: Context, query: PageQuery) -> Response:
    checkpoints, next_key = await _repository(ctx).checkpoints(
        ctx.path_id(), limit=query.limit, after=ctx.after(query.cursor, int)
    )
    return JSONResponse(ctx.page(checkpoints, next_key))


@api.post(
    "/v1/agent-runs/{id:uuid}/checkpoints",
    summary="Append a checkpoint to an unfinished run",
    response=Checkpoint,
    status=201,
    statuses=(404, 409),
)
async def append_checkpoint(ctx: Context, body: CheckpointCreate) -> Response:
    checkpoint = await _repository(ctx).append_checkpoint(
        ctx.path_id(), body.state, body.metadata, body.parent_id
    )
    # A checkpoint has no URL of its own: point at the list that holds it.
    location = f"/v1/agent-runs/{checkpoint.run_id}/checkpoints"
    return JSONResponse(checkpoint, status_code=201, headers={"Location": location})


@api.get(
    "/v1/agent-runs/{id:uuid}/checkpoints/latest",
    summary="A run's checkpoint with the highest sequence",
    response=Checkpoint,
    statuses=(404,),
)
async def latest_checkpoint(ctx: Context) -> Response:
    checkpoint = await _repository(ctx).latest_checkpoint(ctx.path_id())
    return JSONResponse(checkpoint)


@api.get(
    "/v1/agent-runs/{id:uuid}/checkpoints/{checkpoint_id:uuid}",
    summary="One checkpoint of a run",
    response=Checkpoint,
    statuses=(404,),
)
async def get_agent_run_checkpoint(ctx: Context) -> Response:
    checkpoint = await _repository(ctx).checkpoint(ctx.path_id(), ctx.path_id("checkpoint_id"))
    return JSONResponse(checkpoint)
