"""Users of one org."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert

from itinera.db.errors import translate_integrity_errors
from itinera.db.models import AppUser, new_id
from itinera.db.tenancy import TenantRepository
from itinera.domain.users.schemas import User

_COLUMNS = (
    AppUser.id,
    AppUser.email,
    AppUser.role,
    AppUser.disabled,
    AppUser.created_at,
    AppUser.updated_at,
)


class UserCredentials(User, frozen=True, kw_only=True):
    password_hash: str


class UserRepository(TenantRepository):
    async def create(self, email: str, password_hash: str, role: str) -> User:
        with translate_integrity_errors(duplicate=f"a user with email {email!r} exists"):
            row = (
                await self.session.execute(
                    insert(AppUser)
                    .values(
                        org_id=self.org_id,
                        id=new_id(),
                        email=email,
                        role=role,
                        password_hash=password_hash,
                    )
                    .returning(*_COLUMNS)
                )
            ).one()
        return User(**row._mapping)

    async def get(self, user_id: uuid.UUID) -> User | None:
        statement = self.select_from(AppUser, *_COLUMNS).where(AppUser.id == user_id)
        row = (await self.session.execute(statement)).first()
        return User(**row._mapping) if row else None

    async def find_credentials(self, email: str) -> UserCredentials | None:
        statement = self.select_from(AppUser, *_COLUMNS, AppUser.password_hash).where(
            func.lower(AppUser.email) == email.lower()
        )
        row = (await self.session.execute(statement)).first()
        return UserCredentials(**row._mapping) if row else None

    async def update(self, user_id: uuid.UUID, **values: Any) -> User | None:
        statement = (
            self.update_of(AppUser)
            .where(AppUser.id == user_id)
            .values(**values, updated_at=func.now())
            .returning(*_COLUMNS)
        )
        row = (await self.session.execute(statement)).first()
        return User(**row._mapping) if row else None

    async def lock_enabled_admins(self) -> list[uuid.UUID]:
        """The org's enabled admins, their rows locked until the transaction ends.

        Changes to users take these locks first, in id order, so two of them
        run one after the other and the second sees what the first committed
        (an admin demoted a moment ago is no longer in the list); the order
        keeps two such changes from deadlocking.
        """
        statement = (
            self.select_from(AppUser, AppUser.id)
            .where(AppUser.role == "admin", AppUser.disabled.is_(False))
            .order_by(AppUser.id)
            .with_for_update()
        )
        return list((await self.session.scalars(statement)).all())

    async def list(
        self, *, limit: int, after: uuid.UUID | None
    ) -> tuple[list[User], uuid.UUID | None]:
        rows, next_key = await self.fetch_page(
            self.select_from(AppUser, *_COLUMNS), AppUser.id, limit=limit, after=after
        )
        return [User(**row._mapping) for row in rows], next_key
