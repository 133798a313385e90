"""Destinations and the dive sites that belong to them (deleted with them).

Every statement is compiled once (variants — which fields a PATCH sets, whether
a page continues after a key — on first use) and runs through the repository's
verbs.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any, cast

import asyncpg
from sqlalchemy import Table, bindparam, delete, exists, func, insert, select, update

from itinera.db.models import Destination as DestinationRow
from itinera.db.models import DiveSite as DiveSiteRow
from itinera.db.models import new_id
from itinera.db.prepared import Prepared
from itinera.db.repository import ErrorText, TenantRepository, paged
from itinera.errors import NotFoundError
from itinera_client.schemas.destinations import Destination, DiveSite

# Core tables (declarative types __table__ as a FromClause); columns are looked up
# by name: the ORM attribute of "metadata" is ``metadata_``.
DESTINATIONS = cast(Table, DestinationRow.__table__)
DIVE_SITES = cast(Table, DiveSiteRow.__table__)
DESTINATION_COLUMNS = tuple(DESTINATIONS.c[name] for name in Destination.__struct_fields__)
DIVE_SITE_COLUMNS = tuple(DIVE_SITES.c[name] for name in DiveSite.__struct_fields__)
# What a body may set, by column name (the keys of ``changes_of(body)``).
DESTINATION_WRITABLE = (
    "slug",
    "name",
    "country",
    "lat",
    "lon",
    "timezone",
    "description",
    "metadata",
)
DIVE_SITE_WRITABLE = (
    "name",
    "min_depth_m",
    "max_depth_m",
    "difficulty",
    "min_certification",
    "lat",
    "lon",
    "metadata",
)
DEPTH_RULE = "min_depth_m must not be greater than max_depth_m"

_DESTINATION_ORG = DESTINATIONS.c.org_id == bindparam("org_id")
_DESTINATION_ID = DESTINATIONS.c.id == bindparam("id")
_DIVE_SITE_ORG = DIVE_SITES.c.org_id == bindparam("org_id")
_DIVE_SITE_ID = DIVE_SITES.c.id == bindparam("id")

CREATE_DESTINATION = Prepared(
    insert(DESTINATIONS)
    .values(
        {
            DESTINATIONS.c.org_id: bindparam("org_id"),
            DESTINATIONS.c.id: bindparam("id"),
            **{DESTINATIONS.c[name]: bindparam(name) for name in DESTINATION_WRITABLE},
        }
    )
    .returning(*DESTINATION_COLUMNS)
)
GET_DESTINATION = Prepared(select(*DESTINATION_COLUMNS).where(_DESTINATION_ORG, _DESTINATION_ID))
DELETE_DESTINATION = Prepared(delete(DESTINATIONS).where(_DESTINATION_ORG, _DESTINATION_ID))
HAS_DESTINATION = Prepared(select(exists().where(_DESTINATION_ORG, _DESTINATION_ID)))

# One statement takes the destination's lock and adds the dive site. FOR KEY
# SHARE is the lock the foreign key check itself takes: a concurrent delete of
# the destination waits for this transaction, or has already won and the
# SELECT finds no destination, so nothing is inserted. Either way the insert
# cannot fail on the reference (a 422 where the caller is owed a 404), and
# dive sites added at once to one destination do not wait for each other.
CREATE_DIVE_SITE = Prepared(
    insert(DIVE_SITES)
    .from_select(
        ["org_id", "id", "destination_id", *DIVE_SITE_WRITABLE],
        select(
            DESTINATIONS.c.org_id,
            bindparam("id", type_=DIVE_SITES.c.id.type),
            DESTINATIONS.c.id,
            *(bindparam(name, type_=DIVE_SITES.c[name].type) for name in DIVE_SITE_WRITABLE),
        )
        .where(_DESTINATION_ORG, DESTINATIONS.c.id == bindparam("destination_id"))
        .with_for_update(read=True, key_share=True),
    )
    .returning(*DIVE_SITE_COLUMNS)
)
GET_DIVE_SITE = Prepared(select(*DIVE_SITE_COLUMNS).where(_DIVE_SITE_ORG, _DIVE_SITE_ID))
DELETE_DIVE_SITE = Prepared(delete(DIVE_SITES).where(_DIVE_SITE_ORG, _DIVE_SITE_ID))


@functools.cache
def _update_destination(fields: frozenset[str]) -> Prepared:
    return Prepared(
        update(DESTINATIONS)
        .where(_DESTINATION_ORG, _DESTINATION_ID)
        .values(
            {
                **{DESTINATIONS.c[name]: bindparam(name) for name in sorted(fields)},
                DESTINATIONS.c.updated_at: func.now(),
            }
        )
        .returning(*DESTINATION_COLUMNS)
    )


@functools.cache
def _list_destinations(by_country: bool, after: bool) -> Prepared:
    statement = select(*DESTINATION_COLUMNS).where(_DESTINATION_ORG)
    if by_country:
        statement = statement.where(DESTINATIONS.c.country == bindparam("country"))
    return paged(statement, DESTINATIONS.c.id, after=after)


@functools.cache
def _update_dive_site(fields: frozenset[str]) -> Prepared:
    return Prepared(
        update(DIVE_SITES)
        .where(_DIVE_SITE_ORG, _DIVE_SITE_ID)
        .values(
            {
                **{DIVE_SITES.c[name]: bindparam(name) for name in sorted(fields)},
                DIVE_SITES.c.updated_at: func.now(),
            }
        )
        .returning(*DIVE_SITE_COLUMNS)
    )


@functools.cache
def _list_dive_sites(by_difficulty: bool, by_depth: bool, after: bool) -> Prepared:
    statement = select(*DIVE_SITE_COLUMNS).where(
        _DIVE_SITE_ORG, DIVE_SITES.c.destination_id == bindparam("destination_id")
    )
    if by_difficulty:
        statement = statement.where(DIVE_SITES.c.difficulty == bindparam("difficulty"))
    if by_depth:
        # No deeper than the limit: the site's deepest point is within it.
        limit = bindparam("max_depth_m", type_=DIVE_SITES.c.max_depth_m.type)
        statement = statement.where(DIVE_SITES.c.max_depth_m <= limit)
    return paged(statement, DIVE_SITES.c.id, after=after)


def _destination(row: asyncpg.Record) -> Destination:
    return Destination(**dict(row.items()))


def _dive_site(row: asyncpg.Record) -> DiveSite:
    return DiveSite(**dict(row.items()))


def _slug_errors(values: dict[str, Any]) -> ErrorText:
    return ErrorText(duplicate=f"a destination with slug {values.get('slug')!r} exists")


class DestinationRepository(TenantRepository):
    async def create(self, values: dict[str, Any]) -> Destination:
        """``values``: every writable field, keyed by column name."""
        row = await self.one(CREATE_DESTINATION, errors=_slug_errors(values), id=new_id(), **values)
        assert row is not None
        return _destination(row)

    async def get(self, destination_id: uuid.UUID) -> Destination | None:
        row = await self.one(GET_DESTINATION, id=destination_id)
        return _destination(row) if row else None

    async def list(
        self, *, limit: int, after: uuid.UUID | None, country: str | None = None
    ) -> tuple[list[Destination], uuid.UUID | None]:
        statement = _list_destinations(country is not None, after is not None)
        rows, next_key = await self.page(statement, "id", limit=limit, after=after, country=country)
        return [_destination(row) for row in rows], next_key

    async def update(self, destination_id: uuid.UUID, values: dict[str, Any]) -> Destination:
        statement = _update_destination(frozenset(values))
        row = await self.one(statement, errors=_slug_errors(values), id=destination_id, **values)
        if row is None:
            raise NotFoundError("no such destination")
        return _destination(row)

    async def delete(self, destination_id: uuid.UUID) -> None:
        """Its dive sites go with it (ON DELETE CASCADE)."""
        if not await self.execute(DELETE_DESTINATION, id=destination_id):
            raise NotFoundError("no such destination")


class DiveSiteRepository(TenantRepository):
    errors = ErrorText(check=DEPTH_RULE)

    async def create(self, destination_id: uuid.UUID, values: dict[str, Any]) -> DiveSite:
        """``values``: every writable field, keyed by column name."""
        row = await self.one(CREATE_DIVE_SITE, id=new_id(), destination_id=destination_id, **values)
        if row is None:
            raise NotFoundError("no such destination")
        return _dive_site(row)

    async def get(self, dive_site_id: uuid.UUID) -> DiveSite | None:
        row = await self.one(GET_DIVE_SITE, id=dive_site_id)
        return _dive_site(row) if row else None

    async def list(
        self,
        destination_id: uuid.UUID,
        *,
        limit: int,
        after: uuid.UUID | None,
        difficulty: str | None = None,
        max_depth_m: int | None = None,
    ) -> tuple[list[DiveSite], uuid.UUID | None]:
        statement = _list_dive_sites(
            difficulty is not None, max_depth_m is not None, after is not None
        )
        rows, next_key = await self.page(
            statement,
            "id",
            limit=limit,
            destination_id=destination_id,
            after=after,
            difficulty=difficulty,
            max_depth_m=None if max_depth_m is None else float(max_depth_m),
        )
        # Only an empty page can hide a missing destination: ask just then.
        if not rows and not await self.scalar(HAS_DESTINATION, id=destination_id):
            raise NotFoundError("no such destination")
        return [_dive_site(row) for row in rows], next_key

    async def update(self, dive_site_id: uuid.UUID, values: dict[str, Any]) -> DiveSite:
        row = await self.one(_update_dive_site(frozenset(values)), id=dive_site_id, **values)
        if row is None:
            raise NotFoundError("no such dive site")
        return _dive_site(row)

    async def delete(self, dive_site_id: uuid.UUID) -> None:
        if not await self.execute(DELETE_DIVE_SITE, id=dive_site_id):
            raise NotFoundError("no such dive site")
