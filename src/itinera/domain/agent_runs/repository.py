"""Agent runs: every lifecycle move and every append is decided by one UPDATE of the run.

A move is ``UPDATE … WHERE status = ANY(allowed predecessors) RETURNING``, so
of two concurrent moves at most one can win. An append takes its number from
the run's ``next_seq`` in the UPDATE that also checks the run is still open,
and inserts with that number in the same statement (a data-modifying CTE feeds
the INSERT); the row lock that UPDATE holds until commit serialises concurrent
appends, so their numbers are distinct and, since a refused append rolls its
increment back with it, without gaps. Tool calls and checkpoints share the
counter.

A run is deleted with its children, children first: one set-based DELETE per
child table rather than the row-by-row cascade, then the run. The cascade stays
as the backstop for a child appended meanwhile: the append holds the run's row
lock, so the run's DELETE waits for it and its cascade sees the new row.

A run may name its thread (``thread_id``, the client's name): a plain column,
not a reference, so deleting a run leaves its thread and the other way round.

Every statement is compiled once (variants — the filters of a list, the fields
of a PATCH — on first use) and runs through the repository's verbs.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import asyncpg
from sqlalchemy import (
    ARRAY,
    CTE,
    String,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute

from itinera.db.errors import constraint_name
from itinera.db.models import AgentCheckpoint as CheckpointRow
from itinera.db.models import AgentRun as AgentRunRow
from itinera.db.models import AgentToolCall as ToolCallRow
from itinera.db.models import new_id
from itinera.db.prepared import Prepared
from itinera.db.repository import ErrorText, TenantRepository, paged
from itinera.errors import ConflictError, InvalidInputError, NotFoundError
from itinera_client.schemas.agent_runs import AgentRun, Checkpoint, ToolCall

# Looked up by column name: the ORM attribute of "metadata" is ``metadata_``.
RUN_COLUMNS = tuple(AgentRunRow.__table__.c[name] for name in AgentRun.__struct_fields__)
TOOL_CALL_COLUMNS = tuple(ToolCallRow.__table__.c[name] for name in ToolCall.__struct_fields__)
CHECKPOINT_COLUMNS = tuple(CheckpointRow.__table__.c[name] for name in Checkpoint.__struct_fields__)

# The statuses each status may be reached from. No status is its own
# predecessor: setting the current status again is not a move.
PREDECESSORS: dict[str, tuple[str, ...]] = {
    "queued": (),
    "running": ("queued",),
    "succeeded": ("running",),
    "failed": ("running",),
    "cancelled": ("queued", "running"),
}
OPEN_STATUSES = ("queued", "running")
FINISHED_STATUSES = ("succeeded", "failed", "cancelled")
# The time a move to each status stamps.
STAMPS: dict[str, str] = {
    "running": "started_at",
    **dict.fromkeys(FINISHED_STATUSES, "finished_at"),
}
PARENT_CONSTRAINT = "fk_agent_checkpoint_parent"
NO_SUCH_PARENT = "no such checkpoint in this run"
WRITABLE = ("status", "plan", "error", "thread_id")

# Named here, where ``list`` is still the builtin and not the repository's method.
ToolCallPage = tuple[list[ToolCall], int | None]
CheckpointPage = tuple[list[Checkpoint], int | None]

_RUN_ORG = AgentRunRow.org_id == bindparam("org_id")
_RUN_ID = AgentRunRow.id == bindparam("id")

CREATE = Prepared(
    insert(AgentRunRow)
    .values(
        org_id=bindparam("org_id"),
        id=bindparam("id"),
        created_by=bindparam("created_by"),
        status="queued",
        intent=bindparam("intent"),
        plan=bindparam("plan"),
        thread_id=bindparam("thread_id"),
    )
    .returning(*RUN_COLUMNS)
)
GET = Prepared(select(*RUN_COLUMNS).where(_RUN_ORG, _RUN_ID))
EXISTS = Prepared(select(exists().where(_RUN_ORG, _RUN_ID)))
STATUS = Prepared(select(AgentRunRow.status).where(_RUN_ORG, _RUN_ID))


def _delete_children() -> Prepared:
    """Both kinds of a run's children in one statement (siblings: their order is free)."""
    tool_calls = (
        delete(ToolCallRow)
        .where(ToolCallRow.org_id == bindparam("org_id"), ToolCallRow.run_id == bindparam("id"))
        .cte("tool_calls")
    )
    return Prepared(
        delete(CheckpointRow)
        .where(CheckpointRow.org_id == bindparam("org_id"), CheckpointRow.run_id == bindparam("id"))
        .add_cte(tool_calls)
    )


DELETE_CHILDREN = _delete_children()
DELETE = Prepared(delete(AgentRunRow).where(_RUN_ORG, _RUN_ID).returning(AgentRunRow.id))


@functools.cache
def _update(fields: frozenset[str], stamp: str | None) -> Prepared:
    """Write ``fields``; with a ``status``, only over one of ``:predecessors``."""
    statement = update(AgentRunRow).where(_RUN_ORG, _RUN_ID)
    if "status" in fields:
        predecessors = bindparam("predecessors", type_=ARRAY(String))
        statement = statement.where(AgentRunRow.status == func.any(predecessors))
    values: dict[str, Any] = {name: bindparam(name) for name in sorted(fields)}
    if stamp is not None:
        values[stamp] = func.now()
    return Prepared(statement.values(**values, updated_at=func.now()).returning(*RUN_COLUMNS))


@functools.cache
def _list(by_creator: bool, by_status: bool, by_thread: bool, after: bool) -> Prepared:
    statement = select(*RUN_COLUMNS).where(_RUN_ORG)
    if by_creator:
        statement = statement.where(AgentRunRow.created_by == bindparam("created_by"))
    if by_status:
        statement = statement.where(AgentRunRow.status == bindparam("status"))
    if by_thread:
        statement = statement.where(AgentRunRow.thread_id == bindparam("thread_id"))
    return paged(statement, AgentRunRow.id, after=after)


def _take_number() -> CTE:
    """The number an append uses, taken only while the run is open (no row otherwise)."""
    return (
        update(AgentRunRow)
        .where(
            AgentRunRow.org_id == bindparam("org_id"),
            AgentRunRow.id == bindparam("run_id"),
            AgentRunRow.status == func.any(literal(list(OPEN_STATUSES), ARRAY(String))),
        )
        .values(next_seq=AgentRunRow.next_seq + 1, updated_at=func.now())
        .returning((AgentRunRow.next_seq - 1).label("number"))
        .cte("taken")
    )


def _append(
    model: type[ToolCallRow] | type[CheckpointRow],
    number_column: str,
    fields: tuple[str, ...],
    returning: tuple[Any, ...],
) -> Prepared:
    """Number and insert a child in one statement: the run's UPDATE feeds the INSERT.

    When the run is missing or finished the CTE yields no row, so nothing is inserted.
    """
    taken = _take_number()
    table = model.__table__
    names = ("org_id", "id", "run_id", *fields)
    values = [bindparam(name, type_=table.c[name].type) for name in names]
    return Prepared(
        insert(model)
        .from_select([*names, number_column], select(*values, taken.c.number))
        .add_cte(taken)
        .returning(*returning)
    )


APPEND_TOOL_CALL = _append(ToolCallRow, "seq", ("tool", "input", "output"), TOOL_CALL_COLUMNS)
APPEND_CHECKPOINT = _append(
    CheckpointRow, "sequence", ("state", "metadata", "parent_id"), CHECKPOINT_COLUMNS
)


def _children(
    model: type[ToolCallRow] | type[CheckpointRow],
    number: InstrumentedAttribute[int],
    columns: tuple[Any, ...],
    after: bool,
) -> Prepared:
    """A page of a run's tool calls or checkpoints, oldest first."""
    statement = select(*columns).where(
        model.org_id == bindparam("org_id"), model.run_id == bindparam("run_id")
    )
    return paged(statement, number, after=after, newest_first=False)


@functools.cache
def _tool_calls(after: bool) -> Prepared:
    return _children(ToolCallRow, ToolCallRow.seq, TOOL_CALL_COLUMNS, after)


@functools.cache
def _checkpoints(after: bool) -> Prepared:
    return _children(CheckpointRow, CheckpointRow.sequence, CHECKPOINT_COLUMNS, after)


CHECKPOINT = Prepared(
    select(*CHECKPOINT_COLUMNS).where(
        CheckpointRow.org_id == bindparam("org_id"),
        CheckpointRow.run_id == bindparam("run_id"),
        CheckpointRow.id == bindparam("id"),
    )
)
LATEST_CHECKPOINT = Prepared(
    select(*CHECKPOINT_COLUMNS)
    .where(CheckpointRow.org_id == bindparam("org_id"), CheckpointRow.run_id == bindparam("run_id"))
    .order_by(CheckpointRow.sequence.desc())
    .limit(1)
)


def _run(row: asyncpg.Record) -> AgentRun:
    return AgentRun(**dict(row.items()))


def _tool_call(row: asyncpg.Record) -> ToolCall:
    return ToolCall(**dict(row.items()))


def _checkpoint(row: asyncpg.Record) -> Checkpoint:
    return Checkpoint(**dict(row.items()))


class AgentRunRepository(TenantRepository):
    async def create(
        self, created_by: uuid.UUID, intent: str, plan: dict[str, Any], thread_id: str | None
    ) -> AgentRun:
        row = await self.one(
            CREATE,
            id=new_id(),
            created_by=created_by,
            intent=intent,
            plan=plan,
            thread_id=thread_id,
        )
        assert row is not None
        return _run(row)

    async def get(self, run_id: uuid.UUID) -> AgentRun | None:
        row = await self.one(GET, id=run_id)
        return _run(row) if row else None

    async def list(
        self,
        *,
        limit: int,
        after: uuid.UUID | None,
        created_by: uuid.UUID | None,
        status: str | None,
        thread_id: str | None,
    ) -> tuple[list[AgentRun], uuid.UUID | None]:
        statement = _list(
            created_by is not None, status is not None, thread_id is not None, after is not None
        )
        rows, next_key = await self.page(
            statement,
            "id",
            limit=limit,
            after=after,
            created_by=created_by,
            status=status,
            thread_id=thread_id,
        )
        return [_run(row) for row in rows], next_key

    async def delete(self, run_id: uuid.UUID) -> None:
        """The run with its tool calls and checkpoints; its thread and the itineraries
        that name it stay (they lose the link)."""
        await self.execute(DELETE_CHILDREN, id=run_id)
        if await self.one(DELETE, id=run_id) is None:
            raise NotFoundError("no such agent run")

    async def update(self, run_id: uuid.UUID, values: dict[str, Any]) -> AgentRun:
        """Change fields; a new ``status`` must be a legal move from the stored one."""
        params = {name: values[name] for name in WRITABLE if name in values}
        status = params.get("status")
        if status is not None:
            params["predecessors"] = list(PREDECESSORS[status])
        statement = _update(frozenset(params) - {"predecessors"}, STAMPS.get(status or ""))
        row = await self.one(statement, id=run_id, **params)
        if row is None:
            raise await self._why_not(run_id, f"a {{status}} run cannot become {status}")
        return _run(row)

    async def append_tool_call(
        self, run_id: uuid.UUID, tool: str, input: dict[str, Any], output: dict[str, Any]
    ) -> ToolCall:
        row = await self.one(
            APPEND_TOOL_CALL, id=new_id(), run_id=run_id, tool=tool, input=input, output=output
        )
        if row is None:
            raise await self._refused(run_id)
        return _tool_call(row)

    async def append_checkpoint(
        self,
        run_id: uuid.UUID,
        state: dict[str, Any],
        metadata: dict[str, Any],
        parent_id: uuid.UUID | None,
    ) -> Checkpoint:
        try:
            row = await self.one(
                APPEND_CHECKPOINT,
                errors=ErrorText(reference=NO_SUCH_PARENT),
                id=new_id(),
                run_id=run_id,
                state=state,
                metadata=metadata,
                parent_id=parent_id,
            )
        except InvalidInputError as exc:
            # The composite key (org_id, run_id, parent_id) keeps the parent in this run;
            # its name does not follow fk_<table>_org_id_<column>, so no generic pointer.
            cause = exc.__cause__
            if isinstance(cause, Exception) and constraint_name(cause) == PARENT_CONSTRAINT:
                raise InvalidInputError.at("/parent_id", NO_SUCH_PARENT) from cause
            raise
        if row is None:
            raise await self._refused(run_id)
        return _checkpoint(row)

    async def tool_calls(self, run_id: uuid.UUID, *, limit: int, after: int | None) -> ToolCallPage:
        statement = _tool_calls(after is not None)
        rows, next_key = await self.page(statement, "seq", limit=limit, run_id=run_id, after=after)
        # Only an empty page can hide a missing run: ask just then.
        if not rows:
            await self._require(run_id)
        return [_tool_call(row) for row in rows], next_key

    async def checkpoints(
        self, run_id: uuid.UUID, *, limit: int, after: int | None
    ) -> CheckpointPage:
        statement = _checkpoints(after is not None)
        rows, next_key = await self.page(
            statement, "sequence", limit=limit, run_id=run_id, after=after
        )
        if not rows:
            await self._require(run_id)
        return [_checkpoint(row) for row in rows], next_key

    async def checkpoint(self, run_id: uuid.UUID, checkpoint_id: uuid.UUID) -> Checkpoint:
        row = await self.one(CHECKPOINT, run_id=run_id, id=checkpoint_id)
        if row is None:
            await self._require(run_id)
            raise NotFoundError("no such checkpoint in this run")
        return _checkpoint(row)

    async def latest_checkpoint(self, run_id: uuid.UUID) -> Checkpoint:
        """One backward step on the (org_id, run_id, sequence) unique index."""
        row = await self.one(LATEST_CHECKPOINT, run_id=run_id)
        if row is None:
            await self._require(run_id)
            raise NotFoundError("the run has no checkpoints yet")
        return _checkpoint(row)

    async def _require(self, run_id: uuid.UUID) -> None:
        if not await self.scalar(EXISTS, id=run_id):
            raise NotFoundError("no such agent run")

    async def _refused(self, run_id: uuid.UUID) -> Exception:
        return await self._why_not(run_id, "a {status} run takes no more tool calls or checkpoints")

    async def _why_not(self, run_id: uuid.UUID, conflict: str) -> Exception:
        """A guarded write matched nothing: the run is gone, or its status forbids it."""
        status = await self.scalar(STATUS, id=run_id)
        if status is None:
            return NotFoundError("no such agent run")
        return ConflictError(conflict.format(status=status))
