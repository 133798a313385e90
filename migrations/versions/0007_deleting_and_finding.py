"""agent_run.thread_id, and the indexes that deleting and the new list filters need.

- ``agent_run.thread_id``: the client's name of the thread a run works in
  (LangGraph's ``thread_id``), stored as given. Not a foreign key: threads
  outlive runs and runs outlive threads, so neither delete touches the other.
  Indexed with ``id`` for the runs of a thread, newest first.
- ``itinerary (org_id, agent_run_id, id)`` and ``(org_id, destination_id, id)``:
  the list filters, and the ``ON DELETE SET NULL`` a deleted run or destination
  fires, which otherwise reads every itinerary of the org per deleted row.
- ``lead (org_id, chat_session_id)``: the same for a deleted chat session, whose
  leads keep their row and lose the link (``SET NULL (chat_session_id)`` since
  0001, so ``org_id`` is never nulled).
- ``agent_checkpoint (org_id, run_id, parent_id)``: each deleted checkpoint's
  ``SET NULL (parent_id)`` looks up its children; without it, deleting a run's
  n checkpoints (by the API or the sweeper) reads n x n rows.

Additive only: a nullable column and indexes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-11
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_agent_run_org_id_thread_id_id", "agent_run", ["org_id", "thread_id", "id"]),
    ("ix_itinerary_org_id_agent_run_id_id", "itinerary", ["org_id", "agent_run_id", "id"]),
    ("ix_itinerary_org_id_destination_id_id", "itinerary", ["org_id", "destination_id", "id"]),
    ("ix_lead_org_id_chat_session_id", "lead", ["org_id", "chat_session_id"]),
    (
        "ix_agent_checkpoint_org_id_run_id_parent_id",
        "agent_checkpoint",
        ["org_id", "run_id", "parent_id"],
    ),
)


def upgrade() -> None:
    op.add_column("agent_run", sa.Column("thread_id", sa.Text(), nullable=True))
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_column("agent_run", "thread_id")
