"""A live service for the client and its adapters: ``itinera serve`` in a child process on
the session's PostgreSQL and Redis, and orgs to use it as.

Registered as a plugin by ``tests/conftest.py``, so every test may ask for:

- ``live_service``: the session's service (``base_url``) with an org of its own
  (``org``: slug, admin and member accounts, all with the password ``password``),
  ``access_token(account)``, ``expired_access_token(account)`` and
  ``mint_api_key(account)``;
- ``live_tenant``: the same service seen from a fresh org, for a test that counts
  or lists what it made;
- ``live_server(settings, **environment)``, a context manager, for a service of
  its own, e.g. with a small rate limit.

Rate limits are out of the way (100 000 a minute) unless a test sets its own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.security.principal import Principal
from itinera.security.tokens import ACCESS_TOKEN_SECONDS
from itinera.settings import Settings, env_name
from tests.support.processes import ServerProcess, real_server_environment, serving
from tests.support.tenants import PASSWORD, Account, Tenant, access_tokens, make_tenant

UNLIMITED = {
    env_name(field): "100000"
    for field in Settings.__struct_fields__
    if field.startswith("rate_limit_") and field.endswith("_per_minute")
}


@contextlib.contextmanager
def live_server(settings: Settings, **overrides: str) -> Iterator[ServerProcess]:
    """``itinera serve`` on the session's servers, rate limits out of the way unless
    ``overrides`` (environment variables) set them."""
    with serving(real_server_environment(settings, **{**UNLIMITED, **overrides})) as (server,):
        yield server


@dataclass(frozen=True)
class LiveService:
    """A running service and an org on it (``with_org`` for another)."""

    base_url: str
    settings: Settings
    org: Tenant
    owner_engine: AsyncEngine
    password: str = PASSWORD

    @property
    def admin(self) -> Account:
        return self.org.admin

    def access_token(self, account: Account | None = None) -> str:
        """A fresh access token for ``account`` (the admin by default): an account's own
        token expires 15 minutes after its org was made."""
        account = account or self.org.admin
        principal = Principal(account.user_id, account.org_id, account.role)
        return access_tokens(self.settings).issue(principal)

    def expired_access_token(self, account: Account | None = None) -> str:
        """An access token signed with the service's key that expired two minutes ago
        (past the 30 s of leeway the service allows): the service refuses it as expired."""
        account = account or self.org.admin
        principal = Principal(account.user_id, account.org_id, account.role)
        issued = time.time() - ACCESS_TOKEN_SECONDS - 120
        return access_tokens(self.settings).issue(principal, now=issued)

    def mint_api_key(self, account: Account | None = None, *, name: str = "tests") -> str:
        """A new API key for ``account`` (the admin by default), made by its org's admin
        through the API; the secret."""
        account = account or self.org.admin
        if account.org_id != self.org.org_id:
            raise ValueError("an account of another org: mint its key through with_org(...)")
        response = httpx.post(
            f"{self.base_url}/v1/api-keys",
            json={"user_id": str(account.user_id), "name": name},
            headers={"Authorization": f"Bearer {self.access_token()}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        secret = response.json()["secret"]
        assert isinstance(secret, str)
        return secret

    async def new_org(self) -> Tenant:
        """A fresh org with an admin and a member, on this service's database."""
        return await make_tenant(self.owner_engine, self.settings)

    def with_org(self, org: Tenant) -> LiveService:
        """The same service, seen from ``org``."""
        return LiveService(self.base_url, self.settings, org, self.owner_engine, self.password)


@pytest.fixture(scope="session")
def live_server_process(settings: Settings) -> Iterator[ServerProcess]:
    with live_server(settings) as server:
        yield server


@pytest.fixture(scope="session")
async def live_service(
    live_server_process: ServerProcess, owner_engine: AsyncEngine, settings: Settings
) -> LiveService:
    org = await make_tenant(owner_engine, settings)
    return LiveService(live_server_process.base_url, settings, org, owner_engine)


@pytest.fixture
async def live_tenant(live_service: LiveService) -> LiveService:
    """The live service seen from a fresh org."""
    return live_service.with_org(await live_service.new_org())
