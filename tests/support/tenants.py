"""Fresh orgs and users per test, made directly as the owner role (no HTTP, no hashing)."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.db.models import AppUser, Org, new_id
from itinera.security.passwords import PasswordHasher
from itinera.security.principal import Principal, Role
from itinera.security.tokens import AccessTokens
from itinera.settings import Settings

PASSWORD = "correct horse battery staple"


@functools.cache
def password_hash() -> str:
    """Hashed once per session: every test user shares the password."""
    return PasswordHasher().hash_sync(PASSWORD)


@dataclass(frozen=True)
class Account:
    user_id: uuid.UUID
    org_id: uuid.UUID
    email: str
    role: Role
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Tenant:
    org_id: uuid.UUID
    slug: str
    admin: Account
    member: Account


def access_tokens(settings: Settings) -> AccessTokens:
    assert settings.jwt_secret is not None
    return AccessTokens(
        settings.jwt_secret, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )


async def add_user(
    engine: AsyncEngine,
    settings: Settings,
    org_id: uuid.UUID,
    role: Role,
    *,
    email: str | None = None,
) -> Account:
    user_id = new_id()
    email = email or f"{role}-{user_id.hex[-8:]}@example.com"
    async with engine.begin() as conn:
        await conn.execute(
            insert(AppUser).values(
                org_id=org_id, id=user_id, email=email, role=role, password_hash=password_hash()
            )
        )
    token = access_tokens(settings).issue(Principal(user_id, org_id, role))
    return Account(user_id, org_id, email, role, token)


async def make_tenant(engine: AsyncEngine, settings: Settings) -> Tenant:
    org_id = new_id()
    slug = f"org-{org_id.hex[-12:]}"
    async with engine.begin() as conn:
        await conn.execute(insert(Org).values(id=org_id, slug=slug, name=f"Org {slug}"))
    admin = await add_user(engine, settings, org_id, "admin")
    member = await add_user(engine, settings, org_id, "member")
    return Tenant(org_id, slug, admin, member)
