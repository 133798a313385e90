"""Itineraries, written under optimistic concurrency: a write names the ``version`` it
changes (sent as ``If-Match``), and fails with ``PreconditionFailedError`` when someone
changed the itinerary since."""

from __future__ import annotations

import uuid

from itinera_client.calls import (
    AsyncRunner,
    Call,
    SyncRunner,
    etag,
    json_of,
    nothing,
    query,
    unless_not_modified,
)
from itinera_client.schemas.itineraries import (
    Itinerary,
    ItineraryCreate,
    ItineraryListQuery,
    ItineraryStatus,
    ItineraryUpdate,
)
from itinera_client.schemas.pagination import Page

_read = json_of(Itinerary)


def _create(itinerary: ItineraryCreate) -> Call[Itinerary]:
    return Call("POST", "/v1/itineraries", _read, body=itinerary)


def _list(filters: ItineraryListQuery) -> Call[Page[Itinerary]]:
    return Call("GET", "/v1/itineraries", json_of(Page[Itinerary]), params=query(filters))


def _get(itinerary_id: uuid.UUID, unless_version: int | None = None) -> Call[Itinerary | None]:
    headers = None if unless_version is None else {"If-None-Match": etag(unless_version)}
    path = f"/v1/itineraries/{itinerary_id}"
    return Call("GET", path, unless_not_modified(_read), headers=headers)


def _replace(itinerary_id: uuid.UUID, itinerary: ItineraryCreate, version: int) -> Call[Itinerary]:
    headers = {"If-Match": etag(version)}
    path = f"/v1/itineraries/{itinerary_id}"
    return Call("PUT", path, _read, body=itinerary, headers=headers)


def _update(itinerary_id: uuid.UUID, changes: ItineraryUpdate, version: int) -> Call[Itinerary]:
    headers = {"If-Match": etag(version)}
    path = f"/v1/itineraries/{itinerary_id}"
    return Call("PATCH", path, _read, body=changes, headers=headers)


def _delete(itinerary_id: uuid.UUID, version: int | None) -> Call[None]:
    headers = None if version is None else {"If-Match": etag(version)}
    return Call("DELETE", f"/v1/itineraries/{itinerary_id}", nothing, headers=headers)


def _present(itinerary: Itinerary | None) -> Itinerary:
    assert itinerary is not None  # only a conditional GET answers 304
    return itinerary


class Itineraries:
    """``client.itineraries``."""

    def __init__(self, client: AsyncRunner) -> None:
        self._client = client

    async def create(self, itinerary: ItineraryCreate) -> Itinerary:
        return await self._client.run(_create(itinerary))

    async def list(
        self,
        *,
        user_id: uuid.UUID | None = None,
        status: ItineraryStatus | None = None,
        destination_id: uuid.UUID | None = None,
        agent_run_id: uuid.UUID | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Itinerary]:
        """Newest first; ``user_id``: created by that user; the other filters: the
        itinerary's own fields."""
        filters = ItineraryListQuery(
            user_id=user_id,
            status=status,
            destination_id=destination_id,
            agent_run_id=agent_run_id,
            limit=limit,
            cursor=cursor,
        )
        return await self._client.run(_list(filters))

    async def get(self, itinerary_id: uuid.UUID) -> Itinerary:
        return _present(await self._client.run(_get(itinerary_id)))

    async def get_if_changed(self, itinerary_id: uuid.UUID, version: int) -> Itinerary | None:
        """The itinerary if its version is no longer ``version``; None if unchanged (304)."""
        return await self._client.run(_get(itinerary_id, version))

    async def replace(
        self, itinerary_id: uuid.UUID, itinerary: ItineraryCreate, *, version: int
    ) -> Itinerary:
        """Replace every field (absent ones take their defaults), if still at ``version``."""
        return await self._client.run(_replace(itinerary_id, itinerary, version))

    async def update(
        self, itinerary_id: uuid.UUID, changes: ItineraryUpdate, *, version: int
    ) -> Itinerary:
        """Change the fields ``changes`` sets, if the itinerary is still at ``version``."""
        return await self._client.run(_update(itinerary_id, changes, version))

    async def delete(self, itinerary_id: uuid.UUID, *, version: int | None = None) -> None:
        """Delete it; with ``version``, only if it is still at that version."""
        await self._client.run(_delete(itinerary_id, version))


class SyncItineraries:
    """``sync_client.itineraries``: what ``Itineraries`` does, blocking."""

    def __init__(self, client: SyncRunner) -> None:
        self._client = client

    def create(self, itinerary: ItineraryCreate) -> Itinerary:
        return self._client.run(_create(itinerary))

    def list(
        self,
        *,
        user_id: uuid.UUID | None = None,
        status: ItineraryStatus | None = None,
        destination_id: uuid.UUID | None = None,
        agent_run_id: uuid.UUID | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Itinerary]:
        filters = ItineraryListQuery(
            user_id=user_id,
            status=status,
            destination_id=destination_id,
            agent_run_id=agent_run_id,
            limit=limit,
            cursor=cursor,
        )
        return self._client.run(_list(filters))

    def get(self, itinerary_id: uuid.UUID) -> Itinerary:
        return _present(self._client.run(_get(itinerary_id)))

    def get_if_changed(self, itinerary_id: uuid.UUID, version: int) -> Itinerary | None:
        return self._client.run(_get(itinerary_id, version))

    def replace(
        self, itinerary_id: uuid.UUID, itinerary: ItineraryCreate, *, version: int
    ) -> Itinerary:
        return self._client.run(_replace(itinerary_id, itinerary, version))

    def update(
        self, itinerary_id: uuid.UUID, changes: ItineraryUpdate, *, version: int
    ) -> Itinerary:
        return self._client.run(_update(itinerary_id, changes, version))

    def delete(self, itinerary_id: uuid.UUID, *, version: int | None = None) -> None:
        self._client.run(_delete(itinerary_id, version))
