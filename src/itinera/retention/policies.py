"""What each retention policy deletes, as ordered steps: children before parents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Date, Select, and_, cast, func, select
from sqlalchemy.orm import DeclarativeBase

from itinera.db import models as m
from itinera.settings import Settings


def age_cutoff(seconds: int) -> ColumnElement[Any]:
    """``now() - seconds``, in the database's clock."""
    return func.now() - func.make_interval(0, 0, 0, 0, 0, 0, seconds)


@dataclass(frozen=True, slots=True)
class Step:
    """One kind of row a policy deletes, chosen by ``stale`` (a SELECT of its primary key)."""

    name: str
    model: type[DeclarativeBase]
    stale: Callable[[], Select[Any]]

    @property
    def table(self) -> str:
        return str(self.model.__tablename__)


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    steps: tuple[Step, ...]


def _keys(model: Any) -> Select[Any]:
    return select(*model.__table__.primary_key.columns)


def _children_of(child: Any, parent_condition: ColumnElement[bool]) -> Callable[[], Select[Any]]:
    run = m.AgentRun
    return lambda: (
        _keys(child)
        .join(run, and_(run.org_id == child.org_id, run.id == child.run_id))
        .where(parent_condition)
    )


def _of_stale_threads(child: Any, cutoff: ColumnElement[Any]) -> Callable[[], Select[Any]]:
    thread = m.Thread
    return lambda: (
        _keys(child)
        .join(thread, and_(thread.org_id == child.org_id, thread.id == child.thread_id))
        .where(thread.last_checkpoint_at < cutoff)
    )


def policies(settings: Settings) -> tuple[Policy, ...]:
    runs_cutoff = age_cutoff(settings.retention_agent_runs_seconds)
    finished_cutoff = age_cutoff(settings.retention_tool_calls_seconds)
    draft_cutoff = age_cutoff(settings.retention_draft_itineraries_seconds)
    final_cutoff = cast(age_cutoff(settings.retention_final_itineraries_seconds), Date)
    revoked_cutoff = age_cutoff(settings.retention_revoked_refresh_tokens_seconds)
    threads_cutoff = age_cutoff(settings.retention_threads_seconds)
    chat = m.ChatSession
    return (
        Policy(
            "agent_runs",
            (
                Step(
                    "tool calls",
                    m.AgentToolCall,
                    _children_of(m.AgentToolCall, m.AgentRun.created_at < runs_cutoff),
                ),
                Step(
                    "checkpoints",
                    m.AgentCheckpoint,
                    _children_of(m.AgentCheckpoint, m.AgentRun.created_at < runs_cutoff),
                ),
                Step(
                    "runs",
                    m.AgentRun,
                    lambda: _keys(m.AgentRun).where(m.AgentRun.created_at < runs_cutoff),
                ),
            ),
        ),
        Policy(
            "tool_calls",
            (
                Step(
                    "tool calls",
                    m.AgentToolCall,
                    _children_of(m.AgentToolCall, m.AgentRun.finished_at < finished_cutoff),
                ),
            ),
        ),
        Policy(
            "itineraries",
            (
                Step(
                    "drafts",
                    m.Itinerary,
                    lambda: _keys(m.Itinerary).where(
                        m.Itinerary.status == "draft", m.Itinerary.updated_at < draft_cutoff
                    ),
                ),
                Step(
                    "finals",
                    m.Itinerary,
                    lambda: _keys(m.Itinerary).where(
                        m.Itinerary.status == "final", m.Itinerary.end_date < final_cutoff
                    ),
                ),
            ),
        ),
        Policy(
            "idempotency_records",
            (
                Step(
                    "records",
                    m.IdempotencyRecord,
                    lambda: _keys(m.IdempotencyRecord).where(
                        m.IdempotencyRecord.expires_at < func.now()
                    ),
                ),
            ),
        ),
        Policy(
            "chat_sessions",
            (
                Step(
                    "messages",
                    m.ChatMessage,
                    lambda: (
                        _keys(m.ChatMessage)
                        .join(
                            chat,
                            and_(
                                chat.org_id == m.ChatMessage.org_id,
                                chat.id == m.ChatMessage.session_id,
                            ),
                        )
                        .where(chat.expires_at < func.now())
                    ),
                ),
                Step("sessions", chat, lambda: _keys(chat).where(chat.expires_at < func.now())),
            ),
        ),
        Policy(
            "refresh_tokens",
            (
                Step(
                    "expired families",
                    m.RefreshToken,
                    lambda: _keys(m.RefreshToken).where(
                        m.RefreshToken.family_expires_at < func.now()
                    ),
                ),
                Step(
                    "revoked",
                    m.RefreshToken,
                    lambda: _keys(m.RefreshToken).where(m.RefreshToken.revoked_at < revoked_cutoff),
                ),
            ),
        ),
        Policy(
            "threads",
            (
                Step("writes", m.ThreadWrite, _of_stale_threads(m.ThreadWrite, threads_cutoff)),
                Step("values", m.ThreadBlob, _of_stale_threads(m.ThreadBlob, threads_cutoff)),
                Step(
                    "checkpoints",
                    m.ThreadCheckpoint,
                    _of_stale_threads(m.ThreadCheckpoint, threads_cutoff),
                ),
                Step(
                    "threads",
                    m.Thread,
                    lambda: _keys(m.Thread).where(m.Thread.last_checkpoint_at < threads_cutoff),
                ),
            ),
        ),
    )
