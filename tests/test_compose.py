"""compose.yaml and the Dockerfile, read by eye and by test (there is no Docker engine here):
what each promises is checked on the files, and run for real where a process can show it."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from itinera.db.bootstrap import APP_ROLE, OWNER_ROLE, bootstrap_database, drop_database
from tests.support.processes import child_environment
from tests.support.servers import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "itinera:local"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def image_environment() -> dict[str, str]:
    """The ``ENV`` of the Dockerfile (``KEY=value`` pairs, lines joined at backslashes)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in line.split()[1:]:
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def test_postgres_counts_as_healthy_only_when_it_answers_over_tcp() -> None:
    check = services()["postgres"]["healthcheck"]["test"]
    assert check[:2] == ["CMD", "pg_isready"], check
    assert check[check.index("-h") + 1] == "127.0.0.1", check
    assert check[check.index("-d") + 1] == "itinera", check


def test_the_jwt_secret_is_required_with_no_default() -> None:
    secret = compose()["x-itinera-env"]["ITINERA_JWT_SECRET"]
    assert re.fullmatch(r"\$\{ITINERA_JWT_SECRET:\?[^}]+\}", secret), secret
    for name in ("migrate", "itinera"):
        assert services()[name]["environment"]["ITINERA_JWT_SECRET"] == secret


def test_the_image_is_built_once_and_shared() -> None:
    built = {name: s for name, s in services().items() if "build" in s}
    assert list(built) == ["migrate"], list(built)
    assert built["migrate"]["image"] == IMAGE
    assert services()["itinera"]["image"] == IMAGE
    # The replicas never try a registry for the local image.
    assert services()["itinera"]["pull_policy"] == "never"


def test_the_service_waits_for_the_migration_and_the_migration_for_postgres() -> None:
    migrate, itinera = services()["migrate"], services()["itinera"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert itinera["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert itinera["depends_on"]["redis"]["condition"] == "service_healthy"


@pytest.mark.slow
async def test_the_migrate_job_retries_until_the_database_takes_connections(
    postgres: PostgresServer,
) -> None:
    shell, flag, script = services()["migrate"]["command"]
    assert (shell, flag) == ("sh", "-c")
    assert "$" not in script, "compose would interpolate it"
    name = f"itinera_test_{uuid.uuid4().hex[:10]}"
    env = {
        **image_environment(),
        "DATABASE_URL": postgres.role_url(APP_ROLE, name),
        "ITINERA_ADMIN_DATABASE_URL": postgres.role_url(OWNER_ROLE, name),
        # `itinera` as the image has it on its PATH.
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
    }
    job = await asyncio.create_subprocess_exec(
        shell,
        flag,
        script,
        env=child_environment(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert job.stderr is not None
    log: list[str] = []
    try:
        # The database does not exist yet: the first attempt fails and says it will retry.
        while not any("retrying" in line for line in log):
            line = (await job.stderr.readline()).decode()
            assert line, f"the job ended without retrying: {''.join(log)}"
            log.append(line)
        await bootstrap_database(postgres.superuser_dsn, name)
        log.append((await job.stderr.read()).decode())
        assert await job.wait() == 0, "".join(log)
    finally:
        if job.returncode is None:
            job.kill()
            await job.wait()
        await drop_database(postgres.superuser_dsn, name)
    assert any("schema is at head" in line for line in log), "".join(log)


def test_the_image_runs_against_real_servers_only() -> None:
    assert image_environment()["ITINERA_EMBEDDED_SERVERS"] == "false"


@pytest.mark.parametrize(
    ("command", "urls", "missing"),
    [
        ("serve", {}, "DATABASE_URL and ITINERA_ADMIN_DATABASE_URL unset"),
        ("migrate", {}, "DATABASE_URL and ITINERA_ADMIN_DATABASE_URL unset"),
        (
            "serve",
            {
                "DATABASE_URL": "postgresql://itinera_app@postgres/itinera",
                "ITINERA_ADMIN_DATABASE_URL": "postgresql://itinera_owner@postgres/itinera",
            },
            "REDIS_URL unset",
        ),
    ],
)
def test_a_container_without_server_urls_says_what_to_set(
    tmp_path: Path, command: str, urls: dict[str, str], missing: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "itinera", command],
        env=child_environment({**image_environment(), **urls}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.startswith(f"itinera: {missing}"), result.stderr
    assert "set " in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [], "nothing was started in the working directory"
