"""Users of the caller's org (admins only; a member gets ``PermissionDeniedError``)."""

from __future__ import annotations

import uuid

from itinera_client.calls import AsyncRunner, Call, SyncRunner, json_of, query
from itinera_client.schemas.pagination import Page, PageQuery
from itinera_client.schemas.users import User, UserCreate, UserUpdate


def _create(user: UserCreate) -> Call[User]:
    return Call("POST", "/v1/users", json_of(User), body=user)


def _list(page: PageQuery) -> Call[Page[User]]:
    return Call("GET", "/v1/users", json_of(Page[User]), params=query(page))


def _get(user_id: uuid.UUID) -> Call[User]:
    return Call("GET", f"/v1/users/{user_id}", json_of(User))


def _update(user_id: uuid.UUID, changes: UserUpdate) -> Call[User]:
    return Call("PATCH", f"/v1/users/{user_id}", json_of(User), body=changes)


class Users:
    """``client.users``."""

    def __init__(self, client: AsyncRunner) -> None:
        self._client = client

    async def create(self, user: UserCreate) -> User:
        """A new user; ``DuplicateError`` if the org has the email (in any case)."""
        return await self._client.run(_create(user))

    async def list(self, *, limit: int = 50, cursor: str | None = None) -> Page[User]:
        return await self._client.run(_list(PageQuery(limit=limit, cursor=cursor)))

    async def get(self, user_id: uuid.UUID) -> User:
        return await self._client.run(_get(user_id))

    async def update(self, user_id: uuid.UUID, changes: UserUpdate) -> User:
        """Change a user's role or disable them; ``ConflictError`` rather than leave the org
        without an enabled admin."""
        return await self._client.run(_update(user_id, changes))


class SyncUsers:
    """``sync_client.users``: what ``Users`` does, blocking."""

    def __init__(self, client: SyncRunner) -> None:
        self._client = client

    def create(self, user: UserCreate) -> User:
        return self._client.run(_create(user))

    def list(self, *, limit: int = 50, cursor: str | None = None) -> Page[User]:
        return self._client.run(_list(PageQuery(limit=limit, cursor=cursor)))

    def get(self, user_id: uuid.UUID) -> User:
        return self._client.run(_get(user_id))

    def update(self, user_id: uuid.UUID, changes: UserUpdate) -> User:
        return self._client.run(_update(user_id, changes))
