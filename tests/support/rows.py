"""One row in every tenant table of an org, inserted directly by the owner role."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from itinera.db import models as m
from itinera.db.models import new_id


async def insert_everywhere(
    conn: AsyncConnection, org_id: uuid.UUID, user_id: uuid.UUID, *, dim: int
) -> dict[str, uuid.UUID]:
    """Returns the id of the row made in each tenant table (the user's own id for app_user)."""
    ids: dict[str, uuid.UUID] = {"app_user": user_id}
    later = datetime.now(UTC) + timedelta(days=1)

    async def add(model: type[Any], **values: Any) -> uuid.UUID:
        row_id = new_id()
        await conn.execute(insert(model).values(org_id=org_id, id=row_id, **values))
        ids[model.__tablename__] = row_id
        return row_id

    await add(
        m.RefreshToken,
        user_id=user_id,
        family_id=new_id(),
        token_hash=new_id().bytes * 2,
        family_expires_at=later,
    )
    await add(m.ApiKey, user_id=user_id, name="worker", key_hash=new_id().bytes * 2)
    destination = await add(
        m.Destination, slug=f"d-{new_id().hex[-8:]}", name="Dahab", country="EG", lat=28.5, lon=34.5
    )
    await add(
        m.DiveSite,
        destination_id=destination,
        name="Blue Hole",
        min_depth_m=5,
        max_depth_m=30,
        difficulty="advanced",
        lat=28.57,
        lon=34.54,
    )
    item = await add(
        m.KnowledgeItem,
        source="guide.md",
        title="Dahab",
        body="Reefs.",
        content_hash=new_id().bytes * 2,
        destination_id=destination,
    )
    await add(
        m.Embedding,
        item_id=item,
        chunk_index=0,
        chunk_text="Reefs.",
        embedding=[1.0] + [0.0] * (dim - 1),
        destination_id=destination,
    )
    run = await add(m.AgentRun, created_by=user_id, status="queued", intent="plan a trip")
    await add(m.AgentToolCall, run_id=run, seq=1, tool="search", input={}, output={})
    await add(m.AgentCheckpoint, run_id=run, sequence=2, state={})
    await add(
        m.Itinerary,
        created_by=user_id,
        title="Red Sea",
        start_date=date(2027, 1, 1),
        end_date=date(2027, 1, 8),
        status="draft",
    )
    session = await add(m.ChatSession, created_by=user_id, expires_at=later)
    await add(m.ChatMessage, session_id=session, role="user", content="hello")
    await add(m.Lead, email="lead@example.com", source="web", chat_session_id=session)
    await conn.execute(
        insert(m.IdempotencyRecord).values(
            org_id=org_id,
            user_id=user_id,
            key=f"k-{new_id()}",
            fingerprint=b"\0" * 32,
            status=201,
            headers={},
            body=b"{}",
            expires_at=later,
        )
    )
    ids["idempotency_record"] = user_id
    thread = await add(m.Thread, name=f"thread-{new_id()}")
    in_thread = {"org_id": org_id, "thread_id": thread, "checkpoint_ns": ""}
    await conn.execute(
        insert(m.ThreadCheckpoint).values(
            **in_thread, checkpoint_id="1", type="msgpack", checkpoint=b"\x80"
        )
    )
    await conn.execute(
        insert(m.ThreadBlob).values(**in_thread, channel="c", version="1", type="msgpack", blob=b"")
    )
    await conn.execute(
        insert(m.ThreadWrite).values(
            **in_thread,
            checkpoint_id="1",
            task_id="t",
            idx=0,
            channel="c",
            type="msgpack",
            blob=b"",
        )
    )
    for table in ("thread_checkpoint", "thread_blob", "thread_write"):
        ids[table] = thread
    return ids


async def make_destination(engine: AsyncEngine, org_id: uuid.UUID) -> str:
    """A destination of the org, made directly as the owner; its id as text."""
    destination_id = new_id()
    async with engine.begin() as conn:
        await conn.execute(
            insert(m.Destination).values(
                org_id=org_id,
                id=destination_id,
                slug=f"d-{destination_id.hex[-8:]}",
                name="Dahab",
                country="EG",
                lat=28.5,
                lon=34.5,
            )
        )
    return str(destination_id)
