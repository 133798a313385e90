"""Sales leads: one per (email in any case, source) in an org."""

from __future__ import annotations

import uuid

from itinera_client.calls import AsyncRunner, Call, SyncRunner, json_of, nothing, query
from itinera_client.schemas.leads import Lead, LeadCapture, LeadListQuery
from itinera_client.schemas.pagination import Page


def _capture(lead: LeadCapture) -> Call[Lead]:
    return Call("POST", "/v1/leads", json_of(Lead), body=lead)


def _list(filters: LeadListQuery) -> Call[Page[Lead]]:
    return Call("GET", "/v1/leads", json_of(Page[Lead]), params=query(filters))


def _get(lead_id: uuid.UUID) -> Call[Lead]:
    return Call("GET", f"/v1/leads/{lead_id}", json_of(Lead))


def _delete(lead_id: uuid.UUID) -> Call[None]:
    return Call("DELETE", f"/v1/leads/{lead_id}", nothing)


class Leads:
    """``client.leads``."""

    def __init__(self, client: AsyncRunner) -> None:
        self._client = client

    async def capture(self, lead: LeadCapture) -> Lead:
        """Create the lead, or update the one with this email (any case) and source: what
        is sent wins, what is absent is kept."""
        return await self._client.run(_capture(lead))

    async def list(
        self,
        *,
        source: str | None = None,
        email: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Lead]:
        filters = LeadListQuery(source=source, email=email, limit=limit, cursor=cursor)
        return await self._client.run(_list(filters))

    async def get(self, lead_id: uuid.UUID) -> Lead:
        return await self._client.run(_get(lead_id))

    async def delete(self, lead_id: uuid.UUID) -> None:
        await self._client.run(_delete(lead_id))


class SyncLeads:
    """``sync_client.leads``: what ``Leads`` does, blocking."""

    def __init__(self, client: SyncRunner) -> None:
        self._client = client

    def capture(self, lead: LeadCapture) -> Lead:
        return self._client.run(_capture(lead))

    def list(
        self,
        *,
        source: str | None = None,
        email: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Lead]:
        filters = LeadListQuery(source=source, email=email, limit=limit, cursor=cursor)
        return self._client.run(_list(filters))

    def get(self, lead_id: uuid.UUID) -> Lead:
        return self._client.run(_get(lead_id))

    def delete(self, lead_id: uuid.UUID) -> None:
        self._client.run(_delete(lead_id))
