"""knowledge_item.key: a client-chosen name per item, unique in its org.

Additive only: a nullable column and a unique constraint on (org_id, key),
under which NULLs never collide, so items without a key are untouched.

The unique (org_id, content_hash) rule stays as it is. A keyed item is never
deduplicated by content, so the service stores, as its content hash, the
SHA-256 of the key and the body (a preimage that starts with a NUL byte, which
no stored body can, and names the key, which no other item has); items without
a key keep the SHA-256 of their body. A replica of the previous build, whose
ingest relies on ``ON CONFLICT (org_id, content_hash)``, keeps working during a
rolling upgrade — a partial index in place of the constraint would not let it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("knowledge_item", sa.Column("key", sa.Text(), nullable=True))
    op.create_unique_constraint(
        op.f("uq_knowledge_item_org_id_key"), "knowledge_item", ["org_id", "key"]
    )


def downgrade() -> None:
    op.drop_constraint(op.f("uq_knowledge_item_org_id_key"), "knowledge_item", type_="unique")
    op.drop_column("knowledge_item", "key")
