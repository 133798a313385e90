"""Leads: every capture is one upsert on (org, lower(email), source).

Every statement is compiled once per shape (which optional fields a capture
sends, which filters a list has) on first use and runs through the
repository's verbs.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any, cast

import asyncpg
from sqlalchemy import Integer, String, Table, bindparam, column, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from itinera.db.models import Lead as LeadRow
from itinera.db.models import new_id
from itinera.db.prepared import Prepared
from itinera.db.repository import TenantRepository, paged
from itinera.errors import NotFoundError
from itinera_client.schemas.leads import Lead

# Declarative types __table__ as a FromClause; an upsert needs the Table itself.
LEADS = cast(Table, LeadRow.__table__)
COLUMNS = tuple(LEADS.c[name] for name in Lead.__struct_fields__)
# The unique index uq_lead_org_id_lower_email_source, as ON CONFLICT must name it.
CAPTURE_KEY = (LEADS.c.org_id, func.lower(LEADS.c.email), LEADS.c.source)
# A row this statement inserted has xmax = 0; one it updated through ON CONFLICT
# carries this transaction's id there (the conflict locked it). So one statement
# tells a new lead from a repeat, with no second read. (xmax is a system column:
# no model declares it.)
WAS_INSERTED = (column("xmax", Integer) == 0).label("inserted")

_ORG = LEADS.c.org_id == bindparam("org_id")
_ID = LEADS.c.id == bindparam("id")

GET = Prepared(select(*COLUMNS).where(_ORG, _ID))
DELETE = Prepared(delete(LEADS).where(_ORG, _ID))


@functools.cache
def _capture(fields: frozenset[str]) -> Prepared:
    """The upsert of a capture that sends ``fields`` (column names; email and source always)."""
    names = sorted(fields)
    insert = pg_insert(LEADS).values(
        {
            LEADS.c.org_id: bindparam("org_id"),
            LEADS.c.id: bindparam("id"),
            **{LEADS.c[name]: bindparam(name) for name in names},
        }
    )
    return Prepared(
        insert.on_conflict_do_update(
            index_elements=CAPTURE_KEY,
            set_={
                **{name: insert.excluded[name] for name in names if name != "source"},
                "updated_at": func.now(),
            },
        ).returning(*COLUMNS, WAS_INSERTED)
    )


@functools.cache
def _list(by_source: bool, by_email: bool, after: bool) -> Prepared:
    statement = select(*COLUMNS).where(_ORG)
    if by_source:
        statement = statement.where(LEADS.c.source == bindparam("source"))
    if by_email:
        # The same expression as the unique index, so the index serves it.
        statement = statement.where(func.lower(LEADS.c.email) == bindparam("email", type_=String()))
    return paged(statement, LEADS.c.id, after=after)


def _lead(row: asyncpg.Record) -> Lead:
    return Lead(**dict(row.items()))


class LeadRepository(TenantRepository):
    async def capture(self, values: dict[str, Any]) -> tuple[Lead, bool]:
        """Store a new lead or update the org's lead of this email and source; (lead, created).

        ``values`` are the fields the capture sent, keyed by column name. On a
        repeat, those overwrite the stored ones and the rest are kept.
        """
        row = await self.one(_capture(frozenset(values)), id=new_id(), **values)
        assert row is not None
        fields = dict(row.items())
        created = fields.pop("inserted")
        return Lead(**fields), created

    async def get(self, lead_id: uuid.UUID) -> Lead | None:
        row = await self.one(GET, id=lead_id)
        return _lead(row) if row else None

    async def delete(self, lead_id: uuid.UUID) -> None:
        if not await self.execute(DELETE, id=lead_id):
            raise NotFoundError("no such lead")

    async def list(
        self,
        *,
        limit: int,
        after: uuid.UUID | None,
        source: str | None,
        email: str | None,
    ) -> tuple[list[Lead], uuid.UUID | None]:
        statement = _list(source is not None, email is not None, after is not None)
        rows, next_key = await self.page(
            statement,
            "id",
            limit=limit,
            after=after,
            source=source,
            email=email.lower() if email is not None else None,
        )
        return [_lead(row) for row in rows], next_key
