"""Orgs: read by the service, created by the CLI (the service role may only read them)."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from itinera.db.errors import translate_integrity_errors
from itinera.db.models import Org, new_id


class OrgRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    slug: str
    name: str
    created_at: datetime
    updated_at: datetime


_COLUMNS = (Org.id, Org.slug, Org.name, Org.created_at, Org.updated_at)


class OrgRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, org_id: uuid.UUID) -> OrgRecord | None:
        row = (await self.session.execute(select(*_COLUMNS).where(Org.id == org_id))).first()
        return OrgRecord(**row._mapping) if row else None

    async def get_by_slug(self, slug: str) -> OrgRecord | None:
        row = (await self.session.execute(select(*_COLUMNS).where(Org.slug == slug))).first()
        return OrgRecord(**row._mapping) if row else None

    async def create(self, slug: str, name: str) -> OrgRecord:
        with translate_integrity_errors(duplicate=f"an org with slug {slug!r} exists"):
            row = (
                await self.session.execute(
                    insert(Org).values(id=new_id(), slug=slug, name=name).returning(*_COLUMNS)
                )
            ).one()
        return OrgRecord(**row._mapping)
