"""Orgs: read by the service, created by the CLI (the service role may only read them)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import msgspec
from sqlalchemy import bindparam, insert, select

from itinera.db.models import Org, new_id
from itinera.db.prepared import Prepared
from itinera.db.repository import ErrorText, Repository


class OrgRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    slug: str
    name: str
    created_at: datetime
    updated_at: datetime


_COLUMNS = tuple(Org.__table__.c[name] for name in OrgRecord.__struct_fields__)

GET = Prepared(select(*_COLUMNS).where(Org.id == bindparam("id")))
GET_BY_SLUG = Prepared(select(*_COLUMNS).where(Org.slug == bindparam("slug")))
CREATE = Prepared(
    insert(Org)
    .values(id=bindparam("id"), slug=bindparam("slug"), name=bindparam("name"))
    .returning(*_COLUMNS)
)


def _org(row: asyncpg.Record | None) -> OrgRecord | None:
    return OrgRecord(**dict(row.items())) if row else None


class OrgRepository(Repository):
    """Orgs belong to no tenant: the one repository a transaction may use before it has one."""

    async def get(self, org_id: uuid.UUID) -> OrgRecord | None:
        return _org(await self.one(GET, id=org_id))

    async def get_by_slug(self, slug: str) -> OrgRecord | None:
        return _org(await self.one(GET_BY_SLUG, slug=slug))

    async def create(self, slug: str, name: str) -> OrgRecord:
        row = await self.one(
            CREATE,
            errors=ErrorText(duplicate=f"an org with slug {slug!r} exists"),
            id=new_id(),
            slug=slug,
            name=name,
        )
        org = _org(row)
        assert org is not None
        return org
