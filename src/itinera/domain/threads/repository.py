"""Threads for LangGraph: every saver call is one statement (prune: two).

A thread's rows carry its id, not its name: a save first finds the thread of
its name, or makes it, in the same statement (:func:`_thread`). A checkpoint
saves with the channel values it changed in that statement too; a read rebuilds
the channel values from the versions the checkpoint names and gathers its
pending writes as arrays of rows beside it, so a tuple is one row.

Saving a checkpoint locks its thread's row to the end of the transaction:
saves of checkpoints to one thread take turns, and a prune or a delete that
holds the row waits for them and they for it. Pending writes only share the
row (``FOR KEY SHARE``), so the parallel tasks of a step save theirs side by
side.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import asyncpg
from sqlalchemy import (
    ARRAY,
    Boolean,
    Integer,
    LargeBinary,
    Text,
    any_,
    bindparam,
    delete,
    exists,
    func,
    literal,
    literal_column,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID, aggregate_order_by, distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.selectable import CTE

from itinera.db.models import Thread, ThreadBlob, ThreadCheckpoint, ThreadWrite, new_id
from itinera.db.prepared import Prepared
from itinera.db.repository import TenantRepository
from itinera_client.schemas.threads import (
    ChannelValue,
    CheckpointPut,
    CheckpointSearch,
    CheckpointTuple,
    PendingWrite,
    WritesPut,
)

T, C, B, W = Thread, ThreadCheckpoint, ThreadBlob, ThreadWrite

_ORG = bindparam("org_id", type_=UUID(as_uuid=True))


def _thread(*, saves_checkpoint: bool) -> CTE:
    """The id of the thread named ``:thread_id``, made as ``:new_thread_id`` if need be,
    by ``itinera_thread(...)`` (migration 0006): it sees a thread that another
    request made while this statement ran, which the statement itself cannot.
    Saving a checkpoint holds the thread's row to the end of the transaction;
    pending writes share it."""
    thread_id = func.itinera_thread(
        bindparam("org_id", type_=UUID(as_uuid=True)),
        bindparam("thread_id", type_=Text()),
        bindparam("new_thread_id", type_=UUID(as_uuid=True)),
        literal(saves_checkpoint),
        type_=UUID(as_uuid=True),
    )
    return select(thread_id.label("id")).cte("the_thread")


def _unnest(prefix: str, **columns: Any) -> Any:
    """Rows from arrays, an element a row: column ``c`` from the array ``:{prefix}_c``."""
    return (
        func.unnest(
            *(bindparam(f"{prefix}_{name}", type_=ARRAY(type_)) for name, type_ in columns.items())
        )
        .table_valued(*columns)
        .render_derived(name=prefix)
    )


def _put_checkpoint() -> Prepared:
    """Values and checkpoint in one statement; ``created`` tells a new id from a re-put."""
    thread = _thread(saves_checkpoint=True)
    value = _unnest("value", channel=Text(), version=Text(), type=Text(), blob=LargeBinary())
    values = (
        pg_insert(B)
        .from_select(
            ["org_id", "thread_id", "checkpoint_ns", "channel", "version", "type", "blob"],
            select(
                _ORG,
                thread.c.id,
                bindparam("checkpoint_ns", type_=Text()),
                value.c.channel,
                value.c.version,
                value.c.type,
                value.c.blob,
            )
            .select_from(thread)
            .join(value, true()),
        )
        # A version's value never changes: the first save of it stands.
        .on_conflict_do_nothing()
        .cte("saved_values")
    )
    checkpoint = pg_insert(C).from_select(
        [
            "org_id",
            "thread_id",
            "checkpoint_ns",
            "checkpoint_id",
            "parent_checkpoint_id",
            "type",
            "checkpoint",
            "metadata",
            "channel_versions",
        ],
        select(
            _ORG,
            thread.c.id,
            bindparam("checkpoint_ns", type_=Text()),
            bindparam("checkpoint_id", type_=Text()),
            bindparam("parent_checkpoint_id", type_=Text()),
            bindparam("type", type_=Text()),
            bindparam("checkpoint", type_=LargeBinary()),
            bindparam("metadata", type_=JSONB()),
            bindparam("channel_versions", type_=JSONB()),
        ).select_from(thread),
    )
    statement = checkpoint.on_conflict_do_update(
        index_elements=[C.org_id, C.thread_id, C.checkpoint_ns, C.checkpoint_id],
        set_={
            name: checkpoint.excluded[name]
            for name in ("type", "checkpoint", "metadata", "channel_versions")
        },
    ).returning(
        # A row version this statement inserted has no xmax; an updated one has ours.
        literal_column("thread_checkpoint.xmax = 0", Boolean).label("created")
    )
    return Prepared(statement.add_cte(values))


def _put_writes() -> Prepared:
    """A task's writes: special ones (idx < 0) overwrite, the others are kept as first
    saved (a task's writes are saved again when it is retried)."""
    thread = _thread(saves_checkpoint=False)
    write = _unnest("write", idx=Integer(), channel=Text(), type=Text(), blob=LargeBinary())
    statement = pg_insert(W).from_select(
        [
            "org_id",
            "thread_id",
            "checkpoint_ns",
            "checkpoint_id",
            "task_id",
            "task_path",
            "idx",
            "channel",
            "type",
            "blob",
        ],
        select(
            _ORG,
            thread.c.id,
            bindparam("checkpoint_ns", type_=Text()),
            bindparam("checkpoint_id", type_=Text()),
            bindparam("task_id", type_=Text()),
            bindparam("task_path", type_=Text()),
            write.c.idx,
            write.c.channel,
            write.c.type,
            write.c.blob,
        )
        .select_from(thread)
        .join(write, true()),
    )
    saved = statement.on_conflict_do_update(
        index_elements=[
            W.org_id,
            W.thread_id,
            W.checkpoint_ns,
            W.checkpoint_id,
            W.task_id,
            W.idx,
        ],
        set_={name: statement.excluded[name] for name in ("task_path", "channel", "type", "blob")},
        where=W.idx < 0,
    ).cte("saved")
    return Prepared(select(thread.c.id).add_cte(saved))


def _tuple_columns() -> tuple[Any, ...]:
    """A checkpoint, its thread's name, and, as arrays of rows, its channel values and
    its pending writes.

    Each value is looked up by its full key (a LATERAL ... LIMIT 1): the planner
    guesses a hundred channels for any jsonb_each_text, and would rather scan
    every value of the namespace than probe the key that many times.
    """
    version = (
        func.jsonb_each_text(C.channel_versions)
        .table_valued("key", "value")
        .render_derived(name="version")
    )
    blob = (
        select(B.channel, B.version, B.type, B.blob)
        .where(
            B.org_id == C.org_id,
            B.thread_id == C.thread_id,
            B.checkpoint_ns == C.checkpoint_ns,
            B.channel == version.c.key,
            B.version == version.c.value,
        )
        .limit(1)
        .correlate(C, version)
        .lateral("blob")
    )
    values = (
        select(func.array_agg(tuple_(blob.c.channel, blob.c.version, blob.c.type, blob.c.blob)))
        .select_from(version)
        .join(blob, true())
        .scalar_subquery()
    )
    writes = (
        select(
            func.array_agg(
                aggregate_order_by(
                    tuple_(W.task_id, W.task_path, W.idx, W.channel, W.type, W.blob),
                    W.task_path,
                    W.task_id,
                    W.idx,
                )
            )
        )
        .where(
            W.org_id == C.org_id,
            W.thread_id == C.thread_id,
            W.checkpoint_ns == C.checkpoint_ns,
            W.checkpoint_id == C.checkpoint_id,
        )
        .scalar_subquery()
    )
    name = select(T.name).where(T.org_id == C.org_id, T.id == C.thread_id).scalar_subquery()
    return (
        name.label("thread_name"),
        C.thread_id,
        C.checkpoint_ns,
        C.checkpoint_id,
        C.parent_checkpoint_id,
        C.type,
        C.checkpoint,
        C.metadata_.label("metadata"),
        C.created_at,
        values.label("values"),
        writes.label("pending_writes"),
    )


def _checkpoints(*, by_thread: bool) -> Any:
    """Checkpoints of the org, of the thread ``:thread_id`` when ``by_thread``.

    The thread's id comes from a scalar subquery (a constant to the plan), so the
    checkpoints of a namespace are read in key order, newest first, from the
    primary key, and a LIMIT stops the scan; a join would sort them all first.
    """
    statement = select(*_tuple_columns()).where(C.org_id == bindparam("org_id"))
    if by_thread:
        thread = select(T.id).where(
            T.org_id == bindparam("org_id"), T.name == bindparam("thread_id")
        )
        statement = statement.where(C.thread_id == thread.scalar_subquery())
    return statement


def _get(by_id: bool) -> Prepared:
    statement = _checkpoints(by_thread=True).where(C.checkpoint_ns == bindparam("checkpoint_ns"))
    if by_id:
        statement = statement.where(C.checkpoint_id == bindparam("checkpoint_id"))
    return Prepared(statement.order_by(C.checkpoint_id.desc()).limit(1))


@functools.cache
def _search(
    by_thread: bool, by_ns: bool, by_id: bool, by_metadata: bool, before: bool, after: bool
) -> Prepared:
    """A page of checkpoints, newest first; ties (copies keep their ids) by thread, then
    namespace, so a page ends at a definite place."""
    statement = _checkpoints(by_thread=by_thread)
    if by_ns:
        statement = statement.where(C.checkpoint_ns == bindparam("checkpoint_ns"))
    if by_id:
        statement = statement.where(C.checkpoint_id == bindparam("checkpoint_id"))
    if by_metadata:
        statement = statement.where(C.metadata_.contains(bindparam("filter", type_=JSONB())))
    if before:
        statement = statement.where(C.checkpoint_id < bindparam("before", type_=Text()))
    if after:
        statement = statement.where(
            tuple_(C.checkpoint_id, C.thread_id, C.checkpoint_ns)
            < tuple_(
                bindparam("after_checkpoint_id", type_=Text()),
                bindparam("after_thread", type_=UUID(as_uuid=True)),
                bindparam("after_ns", type_=Text()),
            )
        )
    return Prepared(
        statement.order_by(
            C.checkpoint_id.desc(), C.thread_id.desc(), C.checkpoint_ns.desc()
        ).limit(bindparam("limit"))
    )


def _copy() -> Prepared:
    """Every row of the source thread under the target's id, keys kept; the target is
    made if need be, and rows it already has are left as they are."""
    source = (
        select(T.id)
        .where(T.org_id == bindparam("org_id"), T.name == bindparam("source"))
        .with_for_update(read=True, key_share=True)
        .cte("source")
    )
    target = (
        pg_insert(T)
        .from_select(
            ["org_id", "id", "name"],
            select(
                _ORG,
                bindparam("new_thread_id", type_=UUID(as_uuid=True)),
                bindparam("target", type_=Text()),
            ).select_from(source),
        )
        .on_conflict_do_update(
            index_elements=[T.org_id, T.name], set_={"last_checkpoint_at": func.now()}
        )
        .returning(T.id)
        .cte("target")
    )

    def copied(model: Any, name: str) -> CTE:
        table = model.__table__
        rows = table.alias(f"source_{name}")
        columns = [column.name for column in table.columns]
        chosen = [target.c.id if column == "thread_id" else rows.c[column] for column in columns]
        return (
            pg_insert(model)
            .from_select(
                columns,
                select(*chosen)
                .select_from(rows)
                .join(source, rows.c.thread_id == source.c.id)
                .join(target, true())
                .where(rows.c.org_id == bindparam("org_id")),
            )
            .on_conflict_do_nothing()
            .cte(f"copied_{name}")
        )

    return Prepared(
        select(source.c.id).add_cte(
            copied(C, "checkpoints"), copied(B, "values"), copied(W, "writes")
        )
    )


LOCK_THREADS = Prepared(
    select(T.id)
    .where(T.org_id == bindparam("org_id"), T.name == any_(bindparam("names", type_=ARRAY(Text))))
    # One order for every locker: two prunes of overlapping threads cannot deadlock.
    .order_by(T.id)
    .with_for_update()
)
_LOCKED = bindparam("thread_ids", type_=ARRAY(UUID(as_uuid=True)))
DELETE_THREADS = Prepared(delete(T).where(T.org_id == bindparam("org_id"), T.id == any_(_LOCKED)))


def _keep_latest() -> Prepared:
    """Each namespace of the (locked) threads keeps its newest checkpoint, that one's
    pending writes and the values it names; its parent link goes with its parent.
    Writes saved ahead of a checkpoint not yet saved stay (they belong to no
    checkpoint deleted here)."""
    heads = (
        select(C.thread_id, C.checkpoint_ns, C.checkpoint_id, C.channel_versions)
        .ext(distinct_on(C.thread_id, C.checkpoint_ns))
        .where(C.org_id == bindparam("org_id"), C.thread_id == any_(_LOCKED))
        .order_by(C.thread_id, C.checkpoint_ns, C.checkpoint_id.desc())
        .cte("heads")
    )
    is_head = exists().where(
        heads.c.thread_id == C.thread_id,
        heads.c.checkpoint_ns == C.checkpoint_ns,
        heads.c.checkpoint_id == C.checkpoint_id,
    )
    dropped = (
        delete(C)
        .where(C.org_id == bindparam("org_id"), C.thread_id == any_(_LOCKED), ~is_head)
        .returning(C.thread_id, C.checkpoint_ns, C.checkpoint_id)
        .cte("dropped")
    )
    orphaned = (
        update(C)
        .where(C.org_id == bindparam("org_id"), is_head, C.parent_checkpoint_id.is_not(None))
        .values(parent_checkpoint_id=None)
        .cte("orphaned")
    )
    values = delete(B).where(
        B.org_id == bindparam("org_id"),
        B.thread_id == any_(_LOCKED),
        ~exists().where(
            heads.c.thread_id == B.thread_id,
            heads.c.checkpoint_ns == B.checkpoint_ns,
            heads.c.channel_versions.op("->>")(B.channel) == B.version,
        ),
    )
    return Prepared(
        select(func.count())
        .select_from(dropped)
        .add_cte(_writes_of(dropped), orphaned, values.cte("unused_values"))
    )


def _writes_of(dropped: CTE) -> CTE:
    """The pending writes of the checkpoints ``dropped`` returns, each found by key."""
    return (
        delete(W)
        .where(
            W.org_id == bindparam("org_id"),
            W.thread_id == dropped.c.thread_id,
            W.checkpoint_ns == dropped.c.checkpoint_ns,
            W.checkpoint_id == dropped.c.checkpoint_id,
        )
        .cte("dropped_writes")
    )


def _delete_for_runs() -> Prepared:
    """The org's checkpoints whose metadata names one of ``:run_ids`` as its ``run_id``
    (found through the metadata's GIN index, a probe per run), and their pending
    writes. The values they named stay: other checkpoints may name them too, and
    finding out costs a pass over every checkpoint of the namespace (a prune, a
    delete or retention takes them)."""
    run = (
        func.unnest(bindparam("run_ids", type_=ARRAY(Text)))
        .table_valued("run_id")
        .render_derived(name="run")
    )
    dropped = (
        delete(C)
        .where(
            C.org_id == bindparam("org_id"),
            C.metadata_.contains(func.jsonb_build_object(literal("run_id"), run.c.run_id)),
        )
        .returning(C.thread_id, C.checkpoint_ns, C.checkpoint_id)
        .cte("dropped")
    )
    return Prepared(select(func.count()).select_from(dropped).add_cte(_writes_of(dropped)))


PUT_CHECKPOINT = _put_checkpoint()
PUT_WRITES = _put_writes()
GET_LATEST = _get(by_id=False)
GET_BY_ID = _get(by_id=True)
DELETE = Prepared(
    delete(T).where(T.org_id == bindparam("org_id"), T.name == bindparam("thread_id"))
)
COPY = _copy()
KEEP_LATEST = _keep_latest()
DELETE_FOR_RUNS = _delete_for_runs()

# (checkpoint id, thread id, namespace): where a page of a search ends.
Position = tuple[str, uuid.UUID, str]


class ThreadRepository(TenantRepository):
    async def put_checkpoint(self, put: CheckpointPut) -> bool:
        """Save a checkpoint with the values of the channels it changed; True when the
        checkpoint id is new to its namespace."""
        values = put.values
        row = await self.one(
            PUT_CHECKPOINT,
            new_thread_id=new_id(),
            thread_id=put.thread_id,
            checkpoint_ns=put.checkpoint_ns,
            checkpoint_id=put.checkpoint_id,
            parent_checkpoint_id=put.parent_checkpoint_id,
            type=put.type,
            checkpoint=put.checkpoint,
            metadata=put.metadata,
            channel_versions=put.channel_versions,
            value_channel=[v.channel for v in values],
            value_version=[v.version for v in values],
            value_type=[v.type for v in values],
            value_blob=[v.value for v in values],
        )
        assert row is not None  # the checkpoint is inserted or updated, never skipped
        return bool(row["created"])

    async def put_writes(self, put: WritesPut) -> None:
        writes = put.writes
        await self.execute(
            PUT_WRITES,
            new_thread_id=new_id(),
            thread_id=put.thread_id,
            checkpoint_ns=put.checkpoint_ns,
            checkpoint_id=put.checkpoint_id,
            task_id=put.task_id,
            task_path=put.task_path,
            write_idx=[w.idx for w in writes],
            write_channel=[w.channel for w in writes],
            write_type=[w.type for w in writes],
            write_blob=[w.value for w in writes],
        )

    async def get(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> CheckpointTuple | None:
        """The checkpoint of that id, or the newest of the namespace."""
        if checkpoint_id is None:
            row = await self.one(GET_LATEST, thread_id=thread_id, checkpoint_ns=checkpoint_ns)
        else:
            row = await self.one(
                GET_BY_ID,
                thread_id=thread_id,
                checkpoint_ns=checkpoint_ns,
                checkpoint_id=checkpoint_id,
            )
        return None if row is None else _tuple(row)

    async def search(
        self, query: CheckpointSearch, after: Position | None
    ) -> tuple[list[CheckpointTuple], Position | None]:
        statement = _search(
            query.thread_id is not None,
            query.checkpoint_ns is not None,
            query.checkpoint_id is not None,
            bool(query.filter),
            query.before is not None,
            after is not None,
        )
        after_id, after_thread, after_ns = after or (None, None, None)
        rows = await self.all(
            statement,
            thread_id=query.thread_id,
            checkpoint_ns=query.checkpoint_ns,
            checkpoint_id=query.checkpoint_id,
            filter=query.filter,
            before=query.before,
            after_checkpoint_id=after_id,
            after_thread=after_thread,
            after_ns=after_ns,
            limit=query.limit + 1,
        )
        page = rows[: query.limit]
        last = page[-1] if len(rows) > query.limit else None
        position = (
            None
            if last is None
            else (last["checkpoint_id"], last["thread_id"], last["checkpoint_ns"])
        )
        return [_tuple(row) for row in page], position

    async def delete(self, thread_id: str) -> bool:
        """The thread with all its state; False when the org has no thread of that name."""
        return await self.execute(DELETE, thread_id=thread_id) > 0

    async def copy(self, source: str, target: str) -> bool:
        """False when the org has no thread named ``source`` (nothing is made then)."""
        found = await self.scalar(COPY, source=source, target=target, new_thread_id=new_id())
        return found is not None

    async def prune(self, thread_ids: list[str], *, keep_latest: bool) -> None:
        """Threads of those names that the org has; the others are no matter."""
        if not thread_ids:
            return
        # Locked first, in a statement of its own: the prune's snapshot, taken
        # after, then holds every save that was running on these threads.
        locked = [row["id"] for row in await self.all(LOCK_THREADS, names=thread_ids)]
        if not locked:
            return
        if keep_latest:
            await self.scalar(KEEP_LATEST, thread_ids=locked)
        else:
            await self.execute(DELETE_THREADS, thread_ids=locked)

    async def delete_for_runs(self, run_ids: list[str]) -> None:
        if run_ids:
            await self.scalar(DELETE_FOR_RUNS, run_ids=run_ids)


def _tuple(row: asyncpg.Record) -> CheckpointTuple:
    return CheckpointTuple(
        thread_id=row["thread_name"],
        checkpoint_ns=row["checkpoint_ns"],
        checkpoint_id=row["checkpoint_id"],
        parent_checkpoint_id=row["parent_checkpoint_id"],
        type=row["type"],
        checkpoint=row["checkpoint"],
        metadata=row["metadata"],
        values=[
            ChannelValue(channel=channel, version=version, type=type_, value=value)
            for channel, version, type_, value in row["values"] or ()
        ],
        pending_writes=[
            PendingWrite(
                task_id=task_id,
                task_path=task_path,
                idx=idx,
                channel=channel,
                type=type_,
                value=value,
            )
            for task_id, task_path, idx, channel, type_, value in row["pending_writes"] or ()
        ],
        created_at=row["created_at"],
    )
