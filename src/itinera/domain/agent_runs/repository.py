"""Agent runs: every lifecycle move and every append is decided by one UPDATE of the run.

A move is ``UPDATE … WHERE status IN (allowed predecessors) RETURNING``, so of
two concurrent moves at most one can win. An append takes its number from the
run's ``next_seq`` in the UPDATE that also checks the run is still open; the
row lock that UPDATE holds until commit serialises concurrent appends, so
their numbers are distinct and, since a refused append rolls its increment
back with it, without gaps. Tool calls and checkpoints share the counter.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import CTE, Row, exists, func, insert, literal, select
from sqlalchemy.exc import DBAPIError

from itinera.db.errors import FOREIGN_KEY_VIOLATION, constraint_name, sqlstate
from itinera.db.models import AgentCheckpoint as CheckpointRow
from itinera.db.models import AgentRun as AgentRunRow
from itinera.db.models import AgentToolCall as ToolCallRow
from itinera.db.models import new_id
from itinera.db.tenancy import TenantRepository
from itinera.domain.agent_runs.schemas import AgentRun, Checkpoint, ToolCall
from itinera.errors import ConflictError, InvalidInputError, NotFoundError

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
PARENT_CONSTRAINT = "fk_agent_checkpoint_parent"

# Named here, where ``list`` is still the builtin and not the repository's method.
ToolCallPage = tuple[list[ToolCall], int | None]
CheckpointPage = tuple[list[Checkpoint], int | None]


class AgentRunRepository(TenantRepository):
    async def create(self, created_by: uuid.UUID, intent: str, plan: dict[str, Any]) -> AgentRun:
        statement = (
            insert(AgentRunRow)
            .values(
                org_id=self.org_id,
                id=new_id(),
                created_by=created_by,
                status="queued",
                intent=intent,
                plan=plan,
            )
            .returning(*RUN_COLUMNS)
        )
        row = (await self.session.execute(statement)).one()
        return AgentRun(**row._mapping)

    async def get(self, run_id: uuid.UUID) -> AgentRun | None:
        statement = self.select_from(AgentRunRow, *RUN_COLUMNS).where(AgentRunRow.id == run_id)
        row = (await self.session.execute(statement)).first()
        return AgentRun(**row._mapping) if row else None

    async def list(
        self,
        *,
        limit: int,
        after: uuid.UUID | None,
        created_by: uuid.UUID | None,
        status: str | None,
    ) -> tuple[list[AgentRun], uuid.UUID | None]:
        statement = self.select_from(AgentRunRow, *RUN_COLUMNS)
        if created_by is not None:
            statement = statement.where(AgentRunRow.created_by == created_by)
        if status is not None:
            statement = statement.where(AgentRunRow.status == status)
        rows, next_key = await self.fetch_page(statement, AgentRunRow.id, limit=limit, after=after)
        return [AgentRun(**row._mapping) for row in rows], next_key

    async def update(self, run_id: uuid.UUID, values: dict[str, Any]) -> AgentRun:
        """Change fields; a new ``status`` must be a legal move from the stored one."""
        statement = self.update_of(AgentRunRow).where(AgentRunRow.id == run_id)
        status = values.get("status")
        if status is not None:
            statement = statement.where(AgentRunRow.status.in_(PREDECESSORS[status]))
            if status == "running":
                values = {**values, "started_at": func.now()}
            elif status in FINISHED_STATUSES:
                values = {**values, "finished_at": func.now()}
        statement = statement.values(**values, updated_at=func.now()).returning(*RUN_COLUMNS)
        row = (await self.session.execute(statement)).first()
        if row is None:
            raise await self._why_not(run_id, f"a {{status}} run cannot become {status}")
        return AgentRun(**row._mapping)

    async def append_tool_call(
        self, run_id: uuid.UUID, tool: str, input: dict[str, Any], output: dict[str, Any]
    ) -> ToolCall:
        row = await self._append(
            ToolCallRow, run_id, "seq", TOOL_CALL_COLUMNS, tool=tool, input=input, output=output
        )
        return ToolCall(**row._mapping)

    async def append_checkpoint(
        self,
        run_id: uuid.UUID,
        state: dict[str, Any],
        metadata: dict[str, Any],
        parent_id: uuid.UUID | None,
    ) -> Checkpoint:
        try:
            row = await self._append(
                CheckpointRow,
                run_id,
                "sequence",
                CHECKPOINT_COLUMNS,
                state=state,
                metadata=metadata,
                parent_id=parent_id,
            )
        except DBAPIError as exc:
            # The composite key (org_id, run_id, parent_id) keeps the parent in this run;
            # its name does not follow fk_<table>_org_id_<column>, so no generic pointer.
            if sqlstate(exc) == FOREIGN_KEY_VIOLATION and constraint_name(exc) == PARENT_CONSTRAINT:
                raise InvalidInputError.at("/parent_id", "no such checkpoint in this run") from exc
            raise
        return Checkpoint(**row._mapping)

    async def tool_calls(self, run_id: uuid.UUID, *, limit: int, after: int | None) -> ToolCallPage:
        statement = self.select_from(ToolCallRow, *TOOL_CALL_COLUMNS).where(
            ToolCallRow.run_id == run_id
        )
        rows, next_key = await self.fetch_page(
            statement, ToolCallRow.seq, limit=limit, after=after, newest_first=False
        )
        # Only an empty page can hide a missing run: ask just then.
        if not rows:
            await self._require(run_id)
        return [ToolCall(**row._mapping) for row in rows], next_key

    async def checkpoints(
        self, run_id: uuid.UUID, *, limit: int, after: int | None
    ) -> CheckpointPage:
        statement = self.select_from(CheckpointRow, *CHECKPOINT_COLUMNS).where(
            CheckpointRow.run_id == run_id
        )
        rows, next_key = await self.fetch_page(
            statement, CheckpointRow.sequence, limit=limit, after=after, newest_first=False
        )
        if not rows:
            await self._require(run_id)
        return [Checkpoint(**row._mapping) for row in rows], next_key

    async def latest_checkpoint(self, run_id: uuid.UUID) -> Checkpoint:
        """One backward step on the (org_id, run_id, sequence) unique index."""
        statement = (
            self.select_from(CheckpointRow, *CHECKPOINT_COLUMNS)
            .where(CheckpointRow.run_id == run_id)
            .order_by(CheckpointRow.sequence.desc())
            .limit(1)
        )
        row = (await self.session.execute(statement)).first()
        if row is None:
            await self._require(run_id)
            raise NotFoundError("the run has no checkpoints yet")
        return Checkpoint(**row._mapping)

    def _take_number(self, run_id: uuid.UUID) -> CTE:
        """The number an append uses, taken only while the run is open."""
        return (
            self.update_of(AgentRunRow)
            .where(AgentRunRow.id == run_id, AgentRunRow.status.in_(OPEN_STATUSES))
            .values(next_seq=AgentRunRow.next_seq + 1, updated_at=func.now())
            .returning((AgentRunRow.next_seq - 1).label("number"))
            .cte("taken")
        )

    async def _append(
        self,
        model: type[ToolCallRow] | type[CheckpointRow],
        run_id: uuid.UUID,
        number_column: str,
        returning: tuple[Any, ...],
        **values: Any,
    ) -> Row[Any]:
        """Number and insert a child in one round trip: a data-modifying CTE feeds the INSERT.

        When the run is missing or finished the CTE yields no row, so nothing is inserted.
        """
        taken = self._take_number(run_id)
        table = model.__table__
        values = {"org_id": self.org_id, "id": new_id(), "run_id": run_id, **values}
        constants = [literal(value, table.c[name].type) for name, value in values.items()]
        statement = (
            insert(model)
            .from_select([*values, number_column], select(*constants, taken.c.number))
            .add_cte(taken)
            .returning(*returning)
        )
        row = (await self.session.execute(statement)).first()
        if row is None:
            raise await self._why_not(
                run_id, "a {status} run takes no more tool calls or checkpoints"
            )
        return row

    async def _require(self, run_id: uuid.UUID) -> None:
        there = await self.session.scalar(
            select(exists().where(self.owned(AgentRunRow), AgentRunRow.id == run_id))
        )
        if not there:
            raise NotFoundError("no such agent run")

    async def _why_not(self, run_id: uuid.UUID, conflict: str) -> Exception:
        """A guarded write matched nothing: the run is gone, or its status forbids it."""
        status = await self.session.scalar(
            self.select_from(AgentRunRow, AgentRunRow.status).where(AgentRunRow.id == run_id)
        )
        if status is None:
            return NotFoundError("no such agent run")
        return ConflictError(conflict.format(status=status))
