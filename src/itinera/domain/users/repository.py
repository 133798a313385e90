"""Users of one org.

Every statement is compiled once (variants — the fields of an update, a page
after a cursor — on first use) and runs through the repository's verbs.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import asyncpg
from sqlalchemy import bindparam, func, insert, select, update

from itinera.db.models import AppUser, new_id
from itinera.db.prepared import Prepared
from itinera.db.repository import ErrorText, TenantRepository, paged
from itinera_client.schemas.users import User

_COLUMNS = tuple(AppUser.__table__.c[name] for name in User.__struct_fields__)

_ORG = AppUser.org_id == bindparam("org_id")
_ID = AppUser.id == bindparam("id")

CREATE = Prepared(
    insert(AppUser)
    .values(
        org_id=bindparam("org_id"),
        id=bindparam("id"),
        email=bindparam("email"),
        role=bindparam("role"),
        password_hash=bindparam("password_hash"),
    )
    .returning(*_COLUMNS)
)
GET = Prepared(select(*_COLUMNS).where(_ORG, _ID))
# Emails are unique per org regardless of case: the index is on lower(email).
FIND_CREDENTIALS = Prepared(
    select(*_COLUMNS, AppUser.password_hash).where(
        _ORG, func.lower(AppUser.email) == bindparam("email")
    )
)
LOCK_ENABLED_ADMINS = Prepared(
    select(AppUser.id)
    .where(_ORG, AppUser.role == "admin", AppUser.disabled.is_(False))
    .order_by(AppUser.id)
    .with_for_update()
)


@functools.cache
def _update(fields: frozenset[str]) -> Prepared:
    """Write ``fields`` of one user."""
    return Prepared(
        update(AppUser)
        .where(_ORG, _ID)
        .values({**{name: bindparam(name) for name in sorted(fields)}, "updated_at": func.now()})
        .returning(*_COLUMNS)
    )


@functools.cache
def _list(after: bool) -> Prepared:
    statement = select(*_COLUMNS).where(_ORG)
    return paged(statement, AppUser.id, after=after)


class UserCredentials(User, frozen=True, kw_only=True):
    password_hash: str


def _user(row: asyncpg.Record) -> User:
    return User(**dict(row.items()))


class UserRepository(TenantRepository):
    async def create(self, email: str, password_hash: str, role: str) -> User:
        row = await self.one(
            CREATE,
            errors=ErrorText(duplicate=f"a user with email {email!r} exists"),
            id=new_id(),
            email=email,
            role=role,
            password_hash=password_hash,
        )
        assert row is not None
        return _user(row)

    async def get(self, user_id: uuid.UUID) -> User | None:
        row = await self.one(GET, id=user_id)
        return _user(row) if row else None

    async def find_credentials(self, email: str) -> UserCredentials | None:
        row = await self.one(FIND_CREDENTIALS, email=email.lower())
        return UserCredentials(**dict(row.items())) if row else None

    async def update(self, user_id: uuid.UUID, **values: Any) -> User | None:
        row = await self.one(_update(frozenset(values)), id=user_id, **values)
        return _user(row) if row else None

    async def lock_enabled_admins(self) -> list[uuid.UUID]:
        """The org's enabled admins, their rows locked until the transaction ends.

        Changes to users take these locks first, in id order, so two of them
        run one after the other and the second sees what the first committed
        (an admin demoted a moment ago is no longer in the list); the order
        keeps two such changes from deadlocking.
        """
        return [row["id"] for row in await self.all(LOCK_ENABLED_ADMINS)]

    async def list(
        self, *, limit: int, after: uuid.UUID | None
    ) -> tuple[list[User], uuid.UUID | None]:
        rows, next_key = await self.page(_list(after is not None), "id", limit=limit, after=after)
        return [_user(row) for row in rows], next_key
