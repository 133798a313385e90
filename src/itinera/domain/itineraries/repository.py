"""Itineraries: conditional writes decided by one UPDATE on the version."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, exists, func, insert, select

from itinera.db.errors import translate_integrity_errors
from itinera.db.models import Itinerary as ItineraryRow
from itinera.db.models import new_id
from itinera.db.tenancy import TenantRepository
from itinera.domain.itineraries.schemas import Itinerary
from itinera.errors import NotFoundError, StaleVersionError

COLUMNS = tuple(ItineraryRow.__table__.c[name] for name in Itinerary.__struct_fields__)
DATE_RULE = "start_date must not be after end_date"


def _version_is(versions: Collection[int]) -> ColumnElement[bool]:
    if len(versions) == 1:
        return ItineraryRow.version == next(iter(versions))
    return ItineraryRow.version.in_(sorted(versions))


class ItineraryRepository(TenantRepository):
    async def create(self, created_by: uuid.UUID, values: dict[str, Any]) -> Itinerary:
        statement = (
            insert(ItineraryRow)
            .values(org_id=self.org_id, id=new_id(), created_by=created_by, **values)
            .returning(*COLUMNS)
        )
        with translate_integrity_errors(check=DATE_RULE):
            row = (await self.session.execute(statement)).one()
        return Itinerary(**row._mapping)

    async def get(self, itinerary_id: uuid.UUID) -> Itinerary | None:
        statement = self.select_from(ItineraryRow, *COLUMNS).where(ItineraryRow.id == itinerary_id)
        row = (await self.session.execute(statement)).first()
        return Itinerary(**row._mapping) if row else None

    async def list(
        self,
        *,
        limit: int,
        after: uuid.UUID | None,
        created_by: uuid.UUID | None,
        status: str | None,
    ) -> tuple[list[Itinerary], uuid.UUID | None]:
        statement = self.select_from(ItineraryRow, *COLUMNS)
        if created_by is not None:
            statement = statement.where(ItineraryRow.created_by == created_by)
        if status is not None:
            statement = statement.where(ItineraryRow.status == status)
        rows, next_key = await self.fetch_page(statement, ItineraryRow.id, limit=limit, after=after)
        return [Itinerary(**row._mapping) for row in rows], next_key

    async def update(
        self, itinerary_id: uuid.UUID, versions: Collection[int], values: dict[str, Any]
    ) -> Itinerary:
        """Write only over one of ``versions``: two writers of one version never both win."""
        statement = (
            self.update_of(ItineraryRow)
            .where(ItineraryRow.id == itinerary_id, _version_is(versions))
            .values(**values, version=ItineraryRow.version + 1, updated_at=func.now())
            .returning(*COLUMNS)
        )
        with translate_integrity_errors(check=DATE_RULE):
            row = (await self.session.execute(statement)).first()
        if row is None:
            raise await self._why_not(itinerary_id)
        return Itinerary(**row._mapping)

    async def delete(self, itinerary_id: uuid.UUID, versions: Collection[int] | None) -> None:
        statement = self.delete_from(ItineraryRow).where(ItineraryRow.id == itinerary_id)
        if versions is not None:
            statement = statement.where(_version_is(versions))
        deleted = (await self.session.execute(statement.returning(ItineraryRow.id))).first()
        if deleted is None:
            raise await self._why_not(itinerary_id)

    async def _why_not(self, itinerary_id: uuid.UUID) -> Exception:
        """A conditional write matched nothing: the row is gone, or its version moved on."""
        there = await self.session.scalar(
            select(exists().where(self.owned(ItineraryRow), ItineraryRow.id == itinerary_id))
        )
        if there:
            return StaleVersionError("the itinerary has changed; fetch it again")
        return NotFoundError("no such itinerary")
