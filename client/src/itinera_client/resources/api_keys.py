"""API keys for machine clients (admins only). A key's secret is answered once, when it
is created."""

from __future__ import annotations

import uuid

from itinera_client.calls import AsyncRunner, Call, SyncRunner, json_of, nothing, query
from itinera_client.schemas.api_keys import ApiKey, ApiKeyCreate, ApiKeyCreated, ApiKeyListQuery
from itinera_client.schemas.pagination import Page


def _create(key: ApiKeyCreate) -> Call[ApiKeyCreated]:
    return Call("POST", "/v1/api-keys", json_of(ApiKeyCreated), body=key)


def _list(filters: ApiKeyListQuery) -> Call[Page[ApiKey]]:
    return Call("GET", "/v1/api-keys", json_of(Page[ApiKey]), params=query(filters))


def _revoke(key_id: uuid.UUID) -> Call[None]:
    return Call("DELETE", f"/v1/api-keys/{key_id}", nothing)


class ApiKeys:
    """``client.api_keys``."""

    def __init__(self, client: AsyncRunner) -> None:
        self._client = client

    async def create(self, key: ApiKeyCreate) -> ApiKeyCreated:
        """A key for a user of the org; keep ``secret``, it is not shown again.

        The service keeps no idempotency record for this call (it would hold
        the secret), so a retry after a lost answer makes a second key.
        """
        return await self._client.run(_create(key))

    async def list(
        self, *, user_id: uuid.UUID | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[ApiKey]:
        filters = ApiKeyListQuery(user_id=user_id, limit=limit, cursor=cursor)
        return await self._client.run(_list(filters))

    async def revoke(self, key_id: uuid.UUID) -> None:
        """Revoke a key: refused from the next request on."""
        await self._client.run(_revoke(key_id))


class SyncApiKeys:
    """``sync_client.api_keys``: what ``ApiKeys`` does, blocking."""

    def __init__(self, client: SyncRunner) -> None:
        self._client = client

    def create(self, key: ApiKeyCreate) -> ApiKeyCreated:
        return self._client.run(_create(key))

    def list(
        self, *, user_id: uuid.UUID | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[ApiKey]:
        filters = ApiKeyListQuery(user_id=user_id, limit=limit, cursor=cursor)
        return self._client.run(_list(filters))

    def revoke(self, key_id: uuid.UUID) -> None:
        self._client.run(_revoke(key_id))
