"""The command line, run as a real process against the test database."""

from __future__ import annotations

import uuid

import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.db.models import AppUser, Org
from itinera.settings import Settings
from tests.support.processes import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli_env(settings: Settings) -> dict[str, str]:
    assert settings.database_url
    assert settings.admin_database_url
    return {
        "DATABASE_URL": settings.database_url,
        "ITINERA_ADMIN_DATABASE_URL": settings.admin_database_url,
        "ITINERA_EMBEDDING_DIM": str(settings.embedding_dim),
    }


async def test_seed_twice_leaves_one_demo_org_and_one_admin(
    cli_env: dict[str, str], owner_engine: AsyncEngine
) -> None:
    for _ in range(2):
        result = run_cli("seed", env=cli_env)
        assert result.returncode == 0, result.stderr
        assert "org=demo email=admin@demo.example password=" in result.stdout
    async with owner_engine.connect() as conn:
        orgs = await conn.scalar(select(func.count()).select_from(Org).where(Org.slug == "demo"))
        admins = await conn.scalar(
            select(func.count())
            .select_from(AppUser)
            .join(Org, Org.id == AppUser.org_id)
            .where(Org.slug == "demo", AppUser.role == "admin")
        )
    assert (orgs, admins) == (1, 1)


async def test_create_org_and_user(cli_env: dict[str, str], owner_engine: AsyncEngine) -> None:
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    created = run_cli("create-org", slug, "--name", "Blue Water Travel", env=cli_env)
    assert created.returncode == 0, created.stderr
    org = msgspec.json.decode(created.stdout)
    assert (org["slug"], org["name"]) == (slug, "Blue Water Travel")

    user = run_cli(
        "create-user",
        "--org",
        slug,
        "--email",
        "Skipper@Example.com",
        "--password",
        "correct horse battery",
        "--admin",
        env=cli_env,
    )
    assert user.returncode == 0, user.stderr
    assert msgspec.json.decode(user.stdout)["role"] == "admin"
    async with owner_engine.connect() as conn:
        stored = (
            await conn.execute(
                select(AppUser.email, AppUser.password_hash).where(
                    AppUser.org_id == uuid.UUID(org["id"])
                )
            )
        ).one()
    assert stored.email == "Skipper@Example.com"
    assert stored.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_create_org_twice_fails_cleanly(cli_env: dict[str, str]) -> None:
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    assert run_cli("create-org", slug, "--name", "One", env=cli_env).returncode == 0
    again = run_cli("create-org", slug, "--name", "Two", env=cli_env)
    assert again.returncode == 1
    assert f"an org with slug '{slug}' exists" in again.stderr


def test_create_user_in_unknown_org_fails_cleanly(cli_env: dict[str, str]) -> None:
    result = run_cli(
        "create-user",
        "--org",
        "no-such-org",
        "--email",
        "a@b.example",
        "--password",
        "long enough",
        env=cli_env,
    )
    assert result.returncode == 1
    assert "no org with slug 'no-such-org'" in result.stderr


def test_bad_setting_names_its_variable(cli_env: dict[str, str]) -> None:
    result = run_cli("migrate", env={**cli_env, "ITINERA_EMBEDDING_DIM": "4000"})
    assert result.returncode == 2
    assert "ITINERA_EMBEDDING_DIM" in result.stderr
