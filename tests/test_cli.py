"""The command line, run as a real process against the test database."""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import pty
import re
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

import httpx
import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from itinera.cli import build_parser
from itinera.db.models import ApiKey, AppUser, Org
from itinera.settings import Settings
from tests.support.processes import child_environment, run_cli

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"
PROMPT = re.compile(rb"[Pp]assword: ")


def run_cli_with_stdin(
    *args: str, env: Mapping[str, str], stdin: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "itinera", *args],
        env=child_environment(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_cli_on_a_terminal(
    *args: str, env: Mapping[str, str], answers: list[str]
) -> tuple[int, str]:
    """Run with a pseudo-terminal as standard input, typing each answer once its prompt
    is shown; the exit status and standard error. The child has no controlling terminal,
    so getpass prompts on standard error and reads the terminal on stdin, echo off."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "itinera", *args],
        env=child_environment(env),
        stdin=terminal,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    os.close(terminal)
    assert process.stderr is not None
    shown = b""
    try:
        for number, answer in enumerate(answers, start=1):
            # Typed before its prompt, the answer would be flushed when echo goes off.
            while len(PROMPT.findall(shown)) < number:
                chunk = os.read(process.stderr.fileno(), 4096)
                assert chunk, f"exited before prompt {number}: {shown.decode()}"
                shown += chunk
            os.write(controller, answer.encode() + b"\n")
        _, rest = process.communicate(timeout=60)
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, (shown + rest).decode()


async def can_log_in(client: httpx.AsyncClient, org: str, email: str, password: str) -> bool:
    response = await client.post(
        "/v1/auth/login", json={"org": org, "email": email, "password": password}
    )
    return response.status_code == 200


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


async def test_create_org_and_user_with_the_password_on_stdin(
    cli_env: dict[str, str], owner_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    created = run_cli("create-org", slug, "--name", "Blue Water Travel", env=cli_env)
    assert created.returncode == 0, created.stderr
    org = msgspec.json.decode(created.stdout)
    assert (org["slug"], org["name"]) == (slug, "Blue Water Travel")

    user = run_cli_with_stdin(
        "create-user",
        "--org",
        slug,
        "--email",
        "Skipper@Example.com",
        "--password-stdin",
        "--admin",
        env=cli_env,
        stdin=" correct horse battery \nthe first line only\n",
    )
    assert user.returncode == 0, user.stderr
    assert msgspec.json.decode(user.stdout)["role"] == "admin"
    # The first line, spaces included, without its line ending.
    assert await can_log_in(client, slug, "skipper@example.com", " correct horse battery ")
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
    result = run_cli_with_stdin(
        "create-user",
        "--org",
        "no-such-org",
        "--email",
        "a@b.example",
        "--password-stdin",
        env=cli_env,
        stdin="long enough\n",
    )
    assert result.returncode == 1
    assert "no org with slug 'no-such-org'" in result.stderr


async def test_create_user_prompts_twice_on_a_terminal(
    cli_env: dict[str, str], client: httpx.AsyncClient
) -> None:
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    assert run_cli("create-org", slug, "--name", "Prompted", env=cli_env).returncode == 0
    status, stderr = run_cli_on_a_terminal(
        "create-user",
        "--org",
        slug,
        "--email",
        "ana@example.com",
        env=cli_env,
        answers=["typed at the prompt", "typed at the prompt"],
    )
    assert status == 0, stderr
    assert len(PROMPT.findall(stderr.encode())) == 2
    assert "typed at the prompt" not in stderr
    assert await can_log_in(client, slug, "ana@example.com", "typed at the prompt")


def test_passwords_that_differ_at_the_prompt_are_refused(cli_env: dict[str, str]) -> None:
    status, stderr = run_cli_on_a_terminal(
        "create-user",
        "--org",
        "no-such-org",
        "--email",
        "ana@example.com",
        env=cli_env,
        answers=["one password", "another password"],
    )
    assert status == 2
    assert "the passwords do not match" in stderr


def test_a_password_on_the_command_line_is_refused_and_not_repeated(
    cli_env: dict[str, str],
) -> None:
    for option in (["--password", "hunter2-secret"], ["--password=hunter2-secret"]):
        result = run_cli(
            "create-user", "--org", "demo", "--email", "a@b.example", *option, env=cli_env
        )
        assert result.returncode == 2
        assert "--password-stdin" in result.stderr
        assert "hunter2-secret" not in result.stderr + result.stdout


def test_without_a_terminal_the_password_must_come_with_password_stdin(
    cli_env: dict[str, str],
) -> None:
    result = run_cli_with_stdin(
        "create-user", "--org", "demo", "--email", "a@b.example", env=cli_env, stdin="piped\n"
    )
    assert result.returncode == 2
    assert "--password-stdin" in result.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["create-org", "Blue_Water", "--name", "x"], "", "org slug 'Blue_Water' is not valid"),
        (["create-org", "--name", "x", "--", "-dash-first"], "", "lowercase letters, digits"),
        (["create-org", "a" * 64, "--name", "x"], "", "must be 1 to 63 characters (it has 64)"),
        (["create-org", "fine-slug", "--name", ""], "", "--name must be 1 to 200 characters"),
        (["create-user", "--org", "Demo", "--email", "a@b.c"], "", "--org 'Demo' is not valid"),
        (["create-user", "--org", "demo", "--email", "a b@c"], "", "is not valid: an address"),
        (["create-user", "--org", "demo", "--email", "ab@"], "", "--email 'ab@' is not valid"),
        (
            ["create-user", "--org", "demo", "--email", "a@b.c", "--password-stdin"],
            "short\n",
            "the password must be 8 to 1024 characters (it has 5)",
        ),
        (
            ["create-user", "--org", "demo", "--email", "a@b.c", "--password-stdin"],
            "x" * 1025 + "\n",
            "the password must be 8 to 1024 characters (it has 1025)",
        ),
        (
            ["create-user", "--org", "demo", "--email", "a@b.c", "--password-stdin"],
            "",
            "nothing on standard input",
        ),
    ],
    ids=[
        "slug-case",
        "slug-start",
        "slug-length",
        "org-name",
        "org-case",
        "email-space",
        "email-domain",
        "password-short",
        "password-long",
        "password-missing",
    ],
)
def test_what_the_api_would_refuse_exits_2_with_a_clear_message(
    cli_env: dict[str, str], args: list[str], stdin: str, message: str
) -> None:
    result = run_cli_with_stdin(*args, env=cli_env, stdin=stdin)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_version_is_the_installed_distribution_s(tmp_path: Path) -> None:
    result = run_cli("--version", env={"ITINERA_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"itinera {importlib.metadata.version('itinera')}\n"


async def test_openapi_prints_the_served_document_without_starting_a_server(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    data_dir = tmp_path / ".itinera"
    env = {
        "ITINERA_DATA_DIR": str(data_dir),
        "ITINERA_EMBEDDING_DIM": str(settings.embedding_dim),
        # As in the container image, where the servers' settings are required to serve.
        "ITINERA_EMBEDDED_SERVERS": "false",
    }
    printed = subprocess.run(
        [sys.executable, "-m", "itinera", "openapi"],
        env=child_environment(env),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert printed.returncode == 0, printed.stderr
    served = await client.get("/openapi.json")
    assert printed.stdout == served.content
    assert not data_dir.exists(), "no embedded server was started"


def test_the_readme_lists_every_command_and_option() -> None:
    section = README.read_text().split("## Command line\n", 1)[1].split("\n## ", 1)[0]
    usage = section.split("```", 2)[1].splitlines()
    assert "itinera --version" in usage
    [commands] = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in commands.choices.items():
        [line] = (ln for ln in usage if f"{ln} ".startswith(f"itinera {name} "))
        for action in parser._actions:
            if action.option_strings and action.help != argparse.SUPPRESS:
                shown = [option for option in action.option_strings if option in line]
                assert shown or action.option_strings == ["-h", "--help"], (name, action)
    assert "--password " not in section


def test_bad_setting_names_its_variable(cli_env: dict[str, str]) -> None:
    result = run_cli("migrate", env={**cli_env, "ITINERA_EMBEDDING_DIM": "4000"})
    assert result.returncode == 2
    assert "ITINERA_EMBEDDING_DIM" in result.stderr


async def test_create_api_key_prints_the_secret_once_and_it_works(
    cli_env: dict[str, str], client: httpx.AsyncClient, owner_engine: AsyncEngine
) -> None:
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    assert run_cli("create-org", slug, "--name", "Keys", env=cli_env).returncode == 0
    user = run_cli_with_stdin(
        "create-user",
        "--org",
        slug,
        "--email",
        "worker@example.com",
        "--password-stdin",
        env=cli_env,
        stdin="a long enough password\n",
    )
    assert user.returncode == 0, user.stderr

    created = run_cli(
        "create-api-key",
        "--org",
        slug,
        "--email",
        "Worker@Example.com",
        "--name",
        "nightly",
        env=cli_env,
    )
    assert created.returncode == 0, created.stderr
    key = msgspec.json.decode(created.stdout)
    assert (key["name"], key["revoked_at"]) == ("nightly", None)
    assert key["user_id"] == msgspec.json.decode(user.stdout)["id"]
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {key['secret']}"})
    assert me.status_code == 200, me.text
    assert me.json()["user"]["email"] == "worker@example.com"
    async with owner_engine.connect() as conn:
        stored = await conn.scalar(select(ApiKey.key_hash).where(ApiKey.id == uuid.UUID(key["id"])))
    assert stored == hashlib.sha256(key["secret"].encode()).digest()

    unknown = run_cli(
        "create-api-key",
        "--org",
        slug,
        "--email",
        "nobody@example.com",
        "--name",
        "x",
        env=cli_env,
    )
    assert unknown.returncode == 1
    assert "no user with email 'nobody@example.com'" in unknown.stderr
