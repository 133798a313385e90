"""Destinations and the dive sites that belong to them (deleted with them)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import exists, func, insert, select

from itinera.db.errors import translate_integrity_errors
from itinera.db.models import Destination as DestinationRow
from itinera.db.models import DiveSite as DiveSiteRow
from itinera.db.models import new_id
from itinera.db.tenancy import TenantRepository
from itinera.domain.destinations.schemas import Destination, DiveSite
from itinera.errors import NotFoundError

# Looked up by column name: the ORM attribute of "metadata" is ``metadata_``.
DESTINATION_COLUMNS = tuple(
    DestinationRow.__table__.c[name] for name in Destination.__struct_fields__
)
DIVE_SITE_COLUMNS = tuple(DiveSiteRow.__table__.c[name] for name in DiveSite.__struct_fields__)
DEPTH_RULE = "min_depth_m must not be greater than max_depth_m"


class DestinationRepository(TenantRepository):
    async def create(self, values: dict[str, Any]) -> Destination:
        statement = (
            insert(DestinationRow)
            .values(org_id=self.org_id, id=new_id(), **values)
            .returning(*DESTINATION_COLUMNS)
        )
        with translate_integrity_errors(duplicate=_duplicate_slug(values)):
            row = (await self.session.execute(statement)).one()
        return Destination(**row._mapping)

    async def get(self, destination_id: uuid.UUID) -> Destination | None:
        statement = self.select_from(DestinationRow, *DESTINATION_COLUMNS).where(
            DestinationRow.id == destination_id
        )
        row = (await self.session.execute(statement)).first()
        return Destination(**row._mapping) if row else None

    async def list(
        self, *, limit: int, after: uuid.UUID | None
    ) -> tuple[list[Destination], uuid.UUID | None]:
        rows, next_key = await self.fetch_page(
            self.select_from(DestinationRow, *DESTINATION_COLUMNS),
            DestinationRow.id,
            limit=limit,
            after=after,
        )
        return [Destination(**row._mapping) for row in rows], next_key

    async def update(self, destination_id: uuid.UUID, values: dict[str, Any]) -> Destination:
        statement = (
            self.update_of(DestinationRow)
            .where(DestinationRow.id == destination_id)
            .values(**values, updated_at=func.now())
            .returning(*DESTINATION_COLUMNS)
        )
        with translate_integrity_errors(duplicate=_duplicate_slug(values)):
            row = (await self.session.execute(statement)).first()
        if row is None:
            raise NotFoundError("no such destination")
        return Destination(**row._mapping)

    async def delete(self, destination_id: uuid.UUID) -> None:
        """Its dive sites go with it (ON DELETE CASCADE)."""
        statement = (
            self.delete_from(DestinationRow)
            .where(DestinationRow.id == destination_id)
            .returning(DestinationRow.id)
        )
        if (await self.session.execute(statement)).first() is None:
            raise NotFoundError("no such destination")


class DiveSiteRepository(TenantRepository):
    async def create(self, destination_id: uuid.UUID, values: dict[str, Any]) -> DiveSite:
        # FOR KEY SHARE is the lock the foreign key check itself takes: a
        # concurrent delete of the destination waits for this transaction, or
        # has already won and the destination is simply not found. Either way
        # the insert below cannot fail on the reference (a 422 where the
        # caller is owed a 404).
        lock = (
            self.select_from(DestinationRow, DestinationRow.id)
            .where(DestinationRow.id == destination_id)
            .with_for_update(key_share=True)
        )
        if (await self.session.execute(lock)).first() is None:
            raise NotFoundError("no such destination")
        statement = (
            insert(DiveSiteRow)
            .values(org_id=self.org_id, id=new_id(), destination_id=destination_id, **values)
            .returning(*DIVE_SITE_COLUMNS)
        )
        with translate_integrity_errors(check=DEPTH_RULE):
            row = (await self.session.execute(statement)).one()
        return DiveSite(**row._mapping)

    async def get(self, dive_site_id: uuid.UUID) -> DiveSite | None:
        statement = self.select_from(DiveSiteRow, *DIVE_SITE_COLUMNS).where(
            DiveSiteRow.id == dive_site_id
        )
        row = (await self.session.execute(statement)).first()
        return DiveSite(**row._mapping) if row else None

    async def list(
        self, destination_id: uuid.UUID, *, limit: int, after: uuid.UUID | None
    ) -> tuple[list[DiveSite], uuid.UUID | None]:
        statement = self.select_from(DiveSiteRow, *DIVE_SITE_COLUMNS).where(
            DiveSiteRow.destination_id == destination_id
        )
        rows, next_key = await self.fetch_page(statement, DiveSiteRow.id, limit=limit, after=after)
        # Only an empty page can hide a missing destination: ask just then.
        if not rows and not await self._has_destination(destination_id):
            raise NotFoundError("no such destination")
        return [DiveSite(**row._mapping) for row in rows], next_key

    async def update(self, dive_site_id: uuid.UUID, values: dict[str, Any]) -> DiveSite:
        statement = (
            self.update_of(DiveSiteRow)
            .where(DiveSiteRow.id == dive_site_id)
            .values(**values, updated_at=func.now())
            .returning(*DIVE_SITE_COLUMNS)
        )
        with translate_integrity_errors(check=DEPTH_RULE):
            row = (await self.session.execute(statement)).first()
        if row is None:
            raise NotFoundError("no such dive site")
        return DiveSite(**row._mapping)

    async def delete(self, dive_site_id: uuid.UUID) -> None:
        statement = (
            self.delete_from(DiveSiteRow)
            .where(DiveSiteRow.id == dive_site_id)
            .returning(DiveSiteRow.id)
        )
        if (await self.session.execute(statement)).first() is None:
            raise NotFoundError("no such dive site")

    async def _has_destination(self, destination_id: uuid.UUID) -> bool:
        there = await self.session.scalar(
            select(exists().where(self.owned(DestinationRow), DestinationRow.id == destination_id))
        )
        return bool(there)


def _duplicate_slug(values: dict[str, Any]) -> str:
    return f"a destination with slug {values.get('slug')!r} exists"
