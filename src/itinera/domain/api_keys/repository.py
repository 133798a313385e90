"""API keys of one org, and the resolution of a key to its user.

Every statement is compiled once (variants — the filters of a list — on first
use) and runs through the repository's verbs.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime

import asyncpg
from sqlalchemy import bindparam, func, insert, or_, select, update

from itinera.db.models import ApiKey as ApiKeyRow
from itinera.db.models import AppUser, new_id
from itinera.db.prepared import Prepared
from itinera.db.repository import ErrorText, TenantRepository, paged
from itinera_client.schemas.api_keys import ApiKey

_COLUMNS = tuple(ApiKeyRow.__table__.c[name] for name in ApiKey.__struct_fields__)

_ORG = ApiKeyRow.org_id == bindparam("org_id")
_ID = ApiKeyRow.id == bindparam("id")

CREATE = Prepared(
    insert(ApiKeyRow)
    .values(
        org_id=bindparam("org_id"),
        id=bindparam("id"),
        user_id=bindparam("user_id"),
        name=bindparam("name"),
        key_hash=bindparam("key_hash"),
        expires_at=bindparam("expires_at"),
    )
    .returning(*_COLUMNS)
)
# Revoking twice keeps the first time; a key of another org is not there.
REVOKE = Prepared(
    update(ApiKeyRow)
    .where(_ORG, _ID)
    .values(revoked_at=func.coalesce(ApiKeyRow.revoked_at, func.now()))
    .returning(ApiKeyRow.id)
)
# What itinera_begin_key (migration 0004) accepts, less the user it is given.
RESOLVE = Prepared(
    select(ApiKeyRow.user_id, AppUser.role)
    .join(AppUser, (AppUser.org_id == ApiKeyRow.org_id) & (AppUser.id == ApiKeyRow.user_id))
    .where(
        _ORG,
        ApiKeyRow.key_hash == bindparam("key_hash"),
        ApiKeyRow.revoked_at.is_(None),
        or_(ApiKeyRow.expires_at.is_(None), ApiKeyRow.expires_at > func.now()),
        AppUser.disabled.is_(False),
    )
)

_CREATE_ERRORS = ErrorText(reference="no such user in this org")


@functools.cache
def _list(by_user: bool, after: bool) -> Prepared:
    statement = select(*_COLUMNS).where(_ORG)
    if by_user:
        statement = statement.where(ApiKeyRow.user_id == bindparam("user_id"))
    return paged(statement, ApiKeyRow.id, after=after)


def _api_key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(**dict(row.items()))


class ApiKeyRepository(TenantRepository):
    async def create(
        self, user_id: uuid.UUID, name: str, key_hash: bytes, expires_at: datetime | None
    ) -> ApiKey:
        row = await self.one(
            CREATE,
            errors=_CREATE_ERRORS,
            id=new_id(),
            user_id=user_id,
            name=name,
            key_hash=key_hash,
            expires_at=expires_at,
        )
        assert row is not None
        return _api_key(row)

    async def list(
        self, *, limit: int, after: uuid.UUID | None, user_id: uuid.UUID | None
    ) -> tuple[list[ApiKey], uuid.UUID | None]:
        statement = _list(user_id is not None, after is not None)
        rows, next_key = await self.page(statement, "id", limit=limit, after=after, user_id=user_id)
        return [_api_key(row) for row in rows], next_key

    async def revoke(self, key_id: uuid.UUID) -> bool:
        """Whether the org has such a key (revoked now, or before)."""
        return await self.one(REVOKE, id=key_id) is not None

    async def resolve(self, key_hash: bytes) -> tuple[uuid.UUID, str] | None:
        """The user a live key acts as, and their role; None for no such live key."""
        row = await self.one(RESOLVE, key_hash=key_hash)
        return (row["user_id"], row["role"]) if row else None
