"""Sweeping: bounded batches, one short transaction each, one replica per policy at a time."""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskStatus
from sqlalchemy import ColumnClause, delete, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from itinera.metrics import Metrics
from itinera.retention.policies import Policy, Step

log = logging.getLogger(__name__)

# The two-key form of advisory locks is a lock space of its own: these can
# never collide with the one-key locks of idempotency.
LOCK_CLASS = 0x17_1E_2A


def lock_key(policy: Policy) -> int:
    return int.from_bytes(hashlib.sha256(policy.name.encode()).digest()[:4], "big", signed=True)


@dataclass
class SweepReport:
    policy: str
    rows: dict[str, int] = field(default_factory=dict)
    skipped: bool = False  # another replica holds the policy's lock

    @property
    def total(self) -> int:
        return sum(self.rows.values())


async def count_stale(sessions: async_sessionmaker[AsyncSession], policy: Policy) -> SweepReport:
    """What a sweep would touch now (``itinera sweep --dry-run``)."""
    report = SweepReport(policy.name)
    async with sessions() as session:
        for step in policy.steps:
            stale = step.stale().subquery()
            report.rows[step.name] = int(
                await session.scalar(select(func.count()).select_from(stale)) or 0
            )
    return report


async def sweep(
    sessions: async_sessionmaker[AsyncSession], policy: Policy, batch_size: int
) -> SweepReport:
    """Delete everything the policy finds stale, a batch per transaction.

    Every batch first takes the policy's transaction-level advisory lock; when
    another replica holds it, this sweep stops (that replica is on it). Rows
    locked by live traffic are skipped and left for the next tick.
    """
    report = SweepReport(policy.name)
    for step in policy.steps:
        report.rows[step.name] = 0
        while True:
            deleted = await _delete_batch(sessions, policy, step, batch_size)
            if deleted is None:
                report.skipped = True
                return report
            report.rows[step.name] += deleted
            if deleted < batch_size:
                break
    return report


async def _delete_batch(
    sessions: async_sessionmaker[AsyncSession], policy: Policy, step: Step, batch_size: int
) -> int | None:
    async with sessions() as session:
        try:
            granted = await session.scalar(
                select(func.pg_try_advisory_xact_lock(LOCK_CLASS, lock_key(policy)))
            )
            if not granted:
                return None
            # The batch's rows by their physical address: the victims are
            # gathered once (an InitPlan) and deleted by a TID scan, a plan that
            # stays cheap whatever the table's statistics say (a freshly
            # loaded, not yet analysed table got a nested loop of sequential
            # scans from the row-value IN form).
            ctid: ColumnClause[Any] = literal_column(f"{step.table}.ctid")
            victims = (
                step.stale()
                .with_only_columns(ctid)
                .limit(batch_size)
                .with_for_update(skip_locked=True, of=step.model)
            )
            result = await session.execute(
                delete(step.model).where(ctid == func.any(func.array(victims.scalar_subquery())))
            )
            await session.commit()
        finally:
            # Cancelled mid-batch (shutdown): the batch rolls back whole.
            with anyio.CancelScope(shield=True):
                await session.close()
    return int(result.rowcount)  # type: ignore[attr-defined]


async def run_sweeper(
    sessions: async_sessionmaker[AsyncSession],
    policy: Policy,
    *,
    interval_seconds: float,
    batch_size: int,
    metrics: Metrics,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Sweep the policy every interval (jittered ±10 %) until cancelled; never raises."""
    task_status.started()
    # A random first delay spreads the sweeps of replicas started together.
    await anyio.sleep(random.uniform(0, interval_seconds))  # noqa: S311 - jitter, not secrecy
    while True:
        started = time.perf_counter()
        try:
            report = await sweep(sessions, policy, batch_size)
        except Exception:
            metrics.sweep_failed(policy.name)
            log.exception("retention sweep %s failed; retrying next tick", policy.name)
        else:
            metrics.swept(policy.name, report.total, time.perf_counter() - started)
            if report.total:
                log.info("retention sweep %s deleted %s", policy.name, report.rows)
        await anyio.sleep(interval_seconds * random.uniform(0.9, 1.1))  # noqa: S311
