"""Itineraries: conditional writes decided by one UPDATE on the version.

Every statement is compiled once (variants — the filters of a list, the fields
of a PATCH — on first use) and runs through the repository's verbs.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection
from typing import Any

import asyncpg
from sqlalchemy import ARRAY, Integer, bindparam, delete, exists, func, insert, select, update

from itinera.db.models import Itinerary as ItineraryRow
from itinera.db.models import new_id
from itinera.db.prepared import Prepared
from itinera.db.repository import ErrorText, TenantRepository, paged
from itinera.errors import NotFoundError, StaleVersionError
from itinera_client.schemas.itineraries import Itinerary, ItineraryCreate

COLUMNS = tuple(ItineraryRow.__table__.c[name] for name in Itinerary.__struct_fields__)
WRITABLE = ("title", "start_date", "end_date", "status", "data", "agent_run_id", "destination_id")
DATE_RULE = "start_date must not be after end_date"
_ERRORS = ErrorText(check=DATE_RULE)

_ORG = ItineraryRow.org_id == bindparam("org_id")
_ID = ItineraryRow.id == bindparam("id")
_VERSION_IN = ItineraryRow.version == func.any(bindparam("versions", type_=ARRAY(Integer)))
# What the integer column can hold: a larger If-Match names no version, and as
# a parameter it would not even encode.
_STORABLE_VERSIONS = range(1, 2**31)

CREATE = Prepared(
    insert(ItineraryRow)
    .values(
        org_id=bindparam("org_id"),
        id=bindparam("id"),
        created_by=bindparam("created_by"),
        **{name: bindparam(name) for name in WRITABLE},
    )
    .returning(*COLUMNS)
)
GET = Prepared(select(*COLUMNS).where(_ORG, _ID))
EXISTS = Prepared(select(exists().where(_ORG, _ID)))
DELETE = Prepared(delete(ItineraryRow).where(_ORG, _ID).returning(ItineraryRow.id))
DELETE_VERSION = Prepared(
    delete(ItineraryRow).where(_ORG, _ID, _VERSION_IN).returning(ItineraryRow.id)
)


@functools.cache
def _update(fields: frozenset[str]) -> Prepared:
    """Write ``fields`` over one of the given versions, bumping the version."""
    return Prepared(
        update(ItineraryRow)
        .where(_ORG, _ID, _VERSION_IN)
        .values(
            {
                **{name: bindparam(name) for name in sorted(fields)},
                "version": ItineraryRow.version + 1,
                "updated_at": func.now(),
            }
        )
        .returning(*COLUMNS)
    )


@functools.cache
def _list(filters: frozenset[str], after: bool) -> Prepared:
    """A page where each column named in ``filters`` equals the parameter of its name."""
    statement = select(*COLUMNS).where(_ORG)
    for name in sorted(filters):
        statement = statement.where(ItineraryRow.__table__.c[name] == bindparam(name))
    return paged(statement, ItineraryRow.id, after=after)


def _storable(versions: Collection[int]) -> list[int]:
    return [version for version in versions if version in _STORABLE_VERSIONS]


def _itinerary(row: asyncpg.Record) -> Itinerary:
    return Itinerary(**dict(row.items()))


class ItineraryRepository(TenantRepository):
    errors = _ERRORS

    async def create(self, created_by: uuid.UUID, itinerary: ItineraryCreate) -> Itinerary:
        values = {name: getattr(itinerary, name) for name in WRITABLE}
        row = await self.one(CREATE, id=new_id(), created_by=created_by, **values)
        assert row is not None
        return _itinerary(row)

    async def get(self, itinerary_id: uuid.UUID) -> Itinerary | None:
        row = await self.one(GET, id=itinerary_id)
        return _itinerary(row) if row else None

    async def list(
        self,
        *,
        limit: int,
        after: uuid.UUID | None,
        created_by: uuid.UUID | None = None,
        status: str | None = None,
        destination_id: uuid.UUID | None = None,
        agent_run_id: uuid.UUID | None = None,
    ) -> tuple[list[Itinerary], uuid.UUID | None]:
        """A page newest first; each filter given (not None) must match."""
        given = {
            "created_by": created_by,
            "status": status,
            "destination_id": destination_id,
            "agent_run_id": agent_run_id,
        }
        filters = {name: value for name, value in given.items() if value is not None}
        statement = _list(frozenset(filters), after is not None)
        rows, next_key = await self.page(statement, "id", limit=limit, after=after, **filters)
        return [_itinerary(row) for row in rows], next_key

    async def update(
        self, itinerary_id: uuid.UUID, versions: Collection[int], values: dict[str, Any]
    ) -> Itinerary:
        """Write only over one of ``versions``: two writers of one version never both win."""
        storable = _storable(versions)
        if not storable:
            raise await self._why_not(itinerary_id)
        statement = _update(frozenset(values))
        row = await self.one(statement, id=itinerary_id, versions=storable, **values)
        if row is None:
            raise await self._why_not(itinerary_id)
        return _itinerary(row)

    async def delete(self, itinerary_id: uuid.UUID, versions: Collection[int] | None) -> None:
        if versions is None:
            deleted = await self.one(DELETE, id=itinerary_id)
        elif storable := _storable(versions):
            deleted = await self.one(DELETE_VERSION, id=itinerary_id, versions=storable)
        else:
            deleted = None
        if deleted is None:
            raise await self._why_not(itinerary_id)

    async def _why_not(self, itinerary_id: uuid.UUID) -> Exception:
        """A conditional write matched nothing: the row is gone, or its version moved on."""
        if await self.scalar(EXISTS, id=itinerary_id):
            return StaleVersionError(
                "If-Match does not name the current version; fetch the itinerary again"
            )
        return NotFoundError("no such itinerary")
