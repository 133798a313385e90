"""Destinations and their dive sites."""

from __future__ import annotations

import uuid

from itinera_client.calls import AsyncRunner, Call, SyncRunner, json_of, nothing, query
from itinera_client.schemas.destinations import (
    Destination,
    DestinationCreate,
    DestinationListQuery,
    DestinationUpdate,
    Difficulty,
    DiveSite,
    DiveSiteCreate,
    DiveSiteListQuery,
    DiveSiteUpdate,
)
from itinera_client.schemas.pagination import Page


def _create(destination: DestinationCreate) -> Call[Destination]:
    return Call("POST", "/v1/destinations", json_of(Destination), body=destination)


def _list(filters: DestinationListQuery) -> Call[Page[Destination]]:
    return Call("GET", "/v1/destinations", json_of(Page[Destination]), params=query(filters))


def _get(destination_id: uuid.UUID) -> Call[Destination]:
    return Call("GET", f"/v1/destinations/{destination_id}", json_of(Destination))


def _update(destination_id: uuid.UUID, changes: DestinationUpdate) -> Call[Destination]:
    path = f"/v1/destinations/{destination_id}"
    return Call("PATCH", path, json_of(Destination), body=changes)


def _delete(destination_id: uuid.UUID) -> Call[None]:
    return Call("DELETE", f"/v1/destinations/{destination_id}", nothing)


def _create_dive_site(destination_id: uuid.UUID, site: DiveSiteCreate) -> Call[DiveSite]:
    path = f"/v1/destinations/{destination_id}/dive-sites"
    return Call("POST", path, json_of(DiveSite), body=site)


def _dive_sites(destination_id: uuid.UUID, filters: DiveSiteListQuery) -> Call[Page[DiveSite]]:
    path = f"/v1/destinations/{destination_id}/dive-sites"
    return Call("GET", path, json_of(Page[DiveSite]), params=query(filters))


def _get_dive_site(site_id: uuid.UUID) -> Call[DiveSite]:
    return Call("GET", f"/v1/dive-sites/{site_id}", json_of(DiveSite))


def _update_dive_site(site_id: uuid.UUID, changes: DiveSiteUpdate) -> Call[DiveSite]:
    return Call("PATCH", f"/v1/dive-sites/{site_id}", json_of(DiveSite), body=changes)


def _delete_dive_site(site_id: uuid.UUID) -> Call[None]:
    return Call("DELETE", f"/v1/dive-sites/{site_id}", nothing)


class Destinations:
    """``client.destinations``: destinations, and the dive sites of each."""

    def __init__(self, client: AsyncRunner) -> None:
        self._client = client

    async def create(self, destination: DestinationCreate) -> Destination:
        return await self._client.run(_create(destination))

    async def list(
        self, *, country: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[Destination]:
        """Newest first; ``country``: an ISO 3166-1 alpha-2 code, e.g. ``"EG"``."""
        filters = DestinationListQuery(country=country, limit=limit, cursor=cursor)
        return await self._client.run(_list(filters))

    async def get(self, destination_id: uuid.UUID) -> Destination:
        return await self._client.run(_get(destination_id))

    async def update(self, destination_id: uuid.UUID, changes: DestinationUpdate) -> Destination:
        return await self._client.run(_update(destination_id, changes))

    async def delete(self, destination_id: uuid.UUID) -> None:
        """Delete a destination and its dive sites."""
        await self._client.run(_delete(destination_id))

    async def create_dive_site(self, destination_id: uuid.UUID, site: DiveSiteCreate) -> DiveSite:
        return await self._client.run(_create_dive_site(destination_id, site))

    async def dive_sites(
        self,
        destination_id: uuid.UUID,
        *,
        difficulty: Difficulty | None = None,
        max_depth_m: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[DiveSite]:
        """Newest first; ``max_depth_m``: sites no deeper than that many (whole) metres."""
        filters = DiveSiteListQuery(
            difficulty=difficulty, max_depth_m=max_depth_m, limit=limit, cursor=cursor
        )
        return await self._client.run(_dive_sites(destination_id, filters))

    async def get_dive_site(self, site_id: uuid.UUID) -> DiveSite:
        return await self._client.run(_get_dive_site(site_id))

    async def update_dive_site(self, site_id: uuid.UUID, changes: DiveSiteUpdate) -> DiveSite:
        return await self._client.run(_update_dive_site(site_id, changes))

    async def delete_dive_site(self, site_id: uuid.UUID) -> None:
        await self._client.run(_delete_dive_site(site_id))


class SyncDestinations:
    """``sync_client.destinations``: what ``Destinations`` does, blocking."""

    def __init__(self, client: SyncRunner) -> None:
        self._client = client

    def create(self, destination: DestinationCreate) -> Destination:
        return self._client.run(_create(destination))

    def list(
        self, *, country: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[Destination]:
        filters = DestinationListQuery(country=country, limit=limit, cursor=cursor)
        return self._client.run(_list(filters))

    def get(self, destination_id: uuid.UUID) -> Destination:
        return self._client.run(_get(destination_id))

    def update(self, destination_id: uuid.UUID, changes: DestinationUpdate) -> Destination:
        return self._client.run(_update(destination_id, changes))

    def delete(self, destination_id: uuid.UUID) -> None:
        self._client.run(_delete(destination_id))

    def create_dive_site(self, destination_id: uuid.UUID, site: DiveSiteCreate) -> DiveSite:
        return self._client.run(_create_dive_site(destination_id, site))

    def dive_sites(
        self,
        destination_id: uuid.UUID,
        *,
        difficulty: Difficulty | None = None,
        max_depth_m: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[DiveSite]:
        filters = DiveSiteListQuery(
            difficulty=difficulty, max_depth_m=max_depth_m, limit=limit, cursor=cursor
        )
        return self._client.run(_dive_sites(destination_id, filters))

    def get_dive_site(self, site_id: uuid.UUID) -> DiveSite:
        return self._client.run(_get_dive_site(site_id))

    def update_dive_site(self, site_id: uuid.UUID, changes: DiveSiteUpdate) -> DiveSite:
        return self._client.run(_update_dive_site(site_id, changes))

    def delete_dive_site(self, site_id: uuid.UUID) -> None:
        self._client.run(_delete_dive_site(site_id))
