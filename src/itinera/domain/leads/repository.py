"""Leads: every capture is one upsert on (org, lower(email), source)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Boolean, Table, func, literal_column, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from itinera.db.errors import translate_integrity_errors
from itinera.db.models import Lead as LeadRow
from itinera.db.models import new_id
from itinera.db.tenancy import TenantRepository
from itinera.domain.leads.schemas import Lead

# Declarative types __table__ as a FromClause; an upsert needs the Table itself.
LEADS = cast(Table, LeadRow.__table__)
COLUMNS = tuple(LEADS.c[name] for name in Lead.__struct_fields__)
# The unique index uq_lead_org_id_lower_email_source, as ON CONFLICT must name it.
CAPTURE_KEY = (LEADS.c.org_id, text("lower(email)"), LEADS.c.source)
# A row this statement inserted has xmax = 0; one it updated through ON CONFLICT
# carries this transaction's id there (the conflict locked it). So one statement
# tells a new lead from a repeat, with no second read.
WAS_INSERTED = literal_column("xmax = 0", Boolean).label("inserted")


class LeadRepository(TenantRepository):
    async def capture(self, values: dict[str, Any]) -> tuple[Lead, bool]:
        """Store a new lead or update the org's lead of this email and source; (lead, created).

        ``values`` are the fields the capture sent, keyed by column name. On a
        repeat, those overwrite the stored ones and the rest are kept.
        """
        insert = pg_insert(LEADS).values(org_id=self.org_id, id=new_id(), **values)
        statement = insert.on_conflict_do_update(
            index_elements=CAPTURE_KEY,
            set_={
                **{name: insert.excluded[name] for name in values if name != "source"},
                "updated_at": func.now(),
            },
        ).returning(*COLUMNS, WAS_INSERTED)
        with translate_integrity_errors():
            row = (await self.session.execute(statement)).one()
        fields = dict(row._mapping)
        created = fields.pop("inserted")
        return Lead(**fields), created

    async def list(
        self,
        *,
        limit: int,
        after: uuid.UUID | None,
        source: str | None,
        email: str | None,
    ) -> tuple[list[Lead], uuid.UUID | None]:
        statement = self.select_from(LeadRow, *COLUMNS)
        if source is not None:
            statement = statement.where(LeadRow.source == source)
        if email is not None:
            # The same expression as the unique index, so the index serves it.
            statement = statement.where(func.lower(LeadRow.email) == email.lower())
        rows, next_key = await self.fetch_page(statement, LeadRow.id, limit=limit, after=after)
        return [Lead(**row._mapping) for row in rows], next_key
