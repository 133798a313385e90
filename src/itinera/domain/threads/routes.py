"""Threads for LangGraph: one request for each call a checkpointer makes.

A thread's name travels in the body, or URL-encoded in the query string
(``?thread_id=support%2F4711``), never in the path: a name may hold slashes,
which the router decodes before it matches a path.

Bodies and answers are JSON, bytes as base64; or MessagePack, bytes as bytes,
with ``Content-Type: application/msgpack`` (the body) and ``Accept:
application/msgpack`` (the answer). Problems are always problem+json. Every
operation, reads included, takes from the caller's ``state`` bucket: a running
graph reads its thread as often as it saves to it.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import quote, urlencode

import msgspec
from starlette.responses import Response

from itinera import scope as request_scope
from itinera.domain.threads.repository import Position, ThreadRepository
from itinera.errors import InvalidInputError, NotFoundError
from itinera.http import JSONResponse, MsgpackResponse
from itinera.routing import Api, Context, Idempotency
from itinera_client.schemas.pagination import Page
from itinera_client.schemas.threads import (
    CheckpointPut,
    CheckpointQuery,
    CheckpointRef,
    CheckpointSearch,
    CheckpointTuple,
    RunsDelete,
    ThreadCopy,
    ThreadPrune,
    ThreadQuery,
    WritesPut,
)

api = Api(tag="threads")

STATE = "state"


def _repository(ctx: Context) -> ThreadRepository:
    return ctx.repository(ThreadRepository)


def _answer(
    ctx: Context, content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    kind = MsgpackResponse if ctx.accepts_msgpack else JSONResponse
    return kind(content, status_code=status_code, headers=headers)


def _location(ref: CheckpointRef) -> str:
    query = urlencode(msgspec.structs.asdict(ref), quote_via=quote)
    return f"/v1/threads/checkpoint?{query}"


@api.post(
    "/v1/threads/checkpoints",
    summary="Save a checkpoint with the values of the channels it changed (LangGraph's put)",
    response=CheckpointRef,
    status=201,
    statuses=(200,),
    bucket=STATE,
    msgpack=True,
)
async def put_checkpoint(ctx: Context, body: CheckpointPut) -> Response:
    """A new checkpoint id answers 201, one already saved in the namespace 200 (its
    checkpoint, metadata and versions are replaced; values already stored stay).
    The thread is made on its first save.

    Body and answer may be application/msgpack (bytes as bytes) instead of JSON
    (bytes as base64)."""
    seen: set[tuple[str, str]] = set()
    for index, value in enumerate(body.values):
        if (value.channel, value.version) in seen:
            raise InvalidInputError.at(f"/values/{index}", "this channel's version is given twice")
        seen.add((value.channel, value.version))
    created = await _repository(ctx).put_checkpoint(body)
    ref = CheckpointRef(
        thread_id=body.thread_id,
        checkpoint_ns=body.checkpoint_ns,
        checkpoint_id=body.checkpoint_id,
    )
    return _answer(ctx, ref, 201 if created else 200, {"Location": _location(ref)})


@api.post(
    "/v1/threads/writes",
    summary="Save a task's pending writes against a checkpoint (LangGraph's put_writes)",
    status=204,
    bucket=STATE,
    msgpack=True,
)
async def put_writes(ctx: Context, body: WritesPut) -> Response:
    """The checkpoint need not be saved yet. Writes are keyed by (task, idx): a write
    with a negative idx (a special channel) replaces what is there, others keep the
    first one saved. The body may be application/msgpack (bytes as bytes)."""
    seen: set[int] = set()
    for index, write in enumerate(body.writes):
        if write.idx in seen:
            raise InvalidInputError.at(f"/writes/{index}/idx", "this idx is given twice")
        seen.add(write.idx)
    await _repository(ctx).put_writes(body)
    return Response(status_code=204)


@api.get(
    "/v1/threads/checkpoint",
    summary="A checkpoint with its channel values and pending writes: the latest of the "
    "namespace, or the one of checkpoint_id (LangGraph's get_tuple)",
    response=CheckpointTuple,
    statuses=(404,),
    bucket=STATE,
    msgpack=True,
)
async def get_checkpoint(ctx: Context, query: CheckpointQuery) -> Response:
    """404 when the thread, the namespace or the checkpoint is not there (another
    org's thread too). With Accept: application/msgpack the answer is MessagePack
    (bytes as bytes), else JSON (bytes as base64)."""
    found = await _repository(ctx).get(query.thread_id, query.checkpoint_ns, query.checkpoint_id)
    if found is None:
        raise NotFoundError("no such checkpoint")
    return _answer(ctx, found)


@api.post(
    "/v1/threads/checkpoints/search",
    summary="Checkpoints newest first, by thread, namespace, metadata and before "
    "(LangGraph's list)",
    response=Page[CheckpointTuple],
    idempotency=Idempotency.NONE,
    bucket=STATE,
    msgpack=True,
)
async def search_checkpoints(ctx: Context, body: CheckpointSearch) -> Response:
    """Without thread_id, across every thread of the org. A page holds up to limit
    checkpoints; pass next_cursor back as cursor (with the same query) for the
    next. Body and answer may be application/msgpack (bytes as bytes) instead of JSON
    (bytes as base64)."""
    codec: Any = ctx.resources.cursors
    route = request_scope.route_template(ctx.scope) or ""
    org_id = ctx.principal.org_id
    after = None
    if body.cursor is not None:
        after = cast(
            Position, tuple(codec.decode(body.cursor, Position, route=route, org_id=org_id))
        )
    items, last = await _repository(ctx).search(body, after)
    cursor = None if last is None else codec.encode(last, route=route, org_id=org_id)
    return _answer(ctx, Page(items=items, next_cursor=cursor))


@api.delete(
    "/v1/threads",
    summary="Delete a thread (?thread_id=, URL-encoded) with all its state",
    statuses=(404,),
    bucket=STATE,
)
async def delete_thread(ctx: Context, query: ThreadQuery) -> Response:
    if not await _repository(ctx).delete(query.thread_id):
        raise NotFoundError("no such thread")
    return Response(status_code=204)


@api.post(
    "/v1/threads/copy",
    summary="Copy a thread's checkpoints, values and pending writes, ids kept, into another thread",
    status=204,
    statuses=(404,),
    bucket=STATE,
    msgpack=True,
)
async def copy_thread(ctx: Context, body: ThreadCopy) -> Response:
    """404 when the org has no thread named source_thread_id (nothing is made)."""
    if body.source_thread_id == body.target_thread_id:
        raise InvalidInputError.at("/target_thread_id", "the target must be another thread")
    if not await _repository(ctx).copy(body.source_thread_id, body.target_thread_id):
        raise NotFoundError("no such thread")
    return Response(status_code=204)


@api.post(
    "/v1/threads/prune",
    summary="Keep only the newest checkpoint of each namespace of these threads, or delete them",
    status=204,
    bucket=STATE,
    msgpack=True,
)
async def prune_threads(ctx: Context, body: ThreadPrune) -> Response:
    """Names the org has no thread of are passed over."""
    await _repository(ctx).prune(
        list(dict.fromkeys(body.thread_ids)), keep_latest=body.strategy == "keep_latest"
    )
    return Response(status_code=204)


@api.post(
    "/v1/threads/delete-for-runs",
    summary="Delete the checkpoints of these runs (metadata run_id), with their pending "
    "writes, in every thread of the org",
    status=204,
    bucket=STATE,
    msgpack=True,
)
async def delete_for_runs(ctx: Context, body: RunsDelete) -> Response:
    await _repository(ctx).delete_for_runs(list(dict.fromkeys(body.run_ids)))
    return Response(status_code=204)
