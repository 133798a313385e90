"""Running the real ``itinera`` command in a child process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import msgspec

from itinera.settings import PLAIN_NAMES, Settings

# Every variable the service reads, so a child starts from a known environment.
_OURS = tuple(PLAIN_NAMES.values())


def child_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITINERA_") and k not in _OURS}
    env.update(overrides)
    return env


def run_cli(
    *args: str, env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "itinera", *args],
        env=child_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def real_server_environment(settings: Settings, **overrides: str) -> dict[str, str]:
    """The environment of an ``itinera serve`` on the session's servers (explicit URLs:
    the embedded PostgreSQL on its unix socket counts as a real server to a child)."""
    assert settings.database_url is not None
    assert settings.admin_database_url is not None
    assert settings.redis_url is not None
    assert settings.jwt_secret is not None
    return {
        "DATABASE_URL": settings.database_url,
        "ITINERA_ADMIN_DATABASE_URL": settings.admin_database_url,
        "REDIS_URL": settings.redis_url,
        "ITINERA_JWT_SECRET": settings.jwt_secret,
        "ITINERA_EMBEDDING_DIM": str(settings.embedding_dim),
        "ITINERA_SWEEPERS_ENABLED": "true" if settings.sweepers_enabled else "false",
        # Several processes share two cores here: a patient Redis, so that no
        # decision fails open because a process was slow to be scheduled.
        "ITINERA_REDIS_TIMEOUT_SECONDS": "5",
        **overrides,
    }


class ServerProcess:
    """``itinera serve`` in a child process, its log (JSON lines) kept in a file."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"serve-{self.port}.log"
        # A file, not a pipe: nobody reads the log while the server runs, and a
        # full pipe would stall it.
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "itinera", "serve", "--port", str(self.port)],
                env=child_environment(env),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log().splitlines():
            with contextlib.suppress(msgspec.DecodeError):
                lines.append(msgspec.json.decode(line))
        return lines

    def wait_until_ready(self, attempts: int = 600) -> None:
        """Poll /ready every 0.1 s; fail if the process exits or never gets ready."""
        with httpx.Client(base_url=self.base_url, timeout=5) as client:
            for _ in range(attempts):
                if self.process.poll() is not None:
                    raise AssertionError(f"serve exited: {self.log()[-3000:]}")
                try:
                    if client.get("/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise AssertionError(f"serve never became ready: {self.log()[-3000:]}")

    def stop(self) -> int:
        """SIGTERM, as an orchestrator stops it; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise
        return int(self.process.returncode)


@contextlib.contextmanager
def serving(*environments: Mapping[str, str]) -> Iterator[list[ServerProcess]]:
    """One ``itinera serve`` per environment, all ready; stopped (and checked to stop
    cleanly) afterwards."""
    with tempfile.TemporaryDirectory(prefix="itinera-serve-") as log_dir:
        servers: list[ServerProcess] = []
        try:
            for env in environments:
                servers.append(ServerProcess(env, Path(log_dir)))
            for server in servers:
                server.wait_until_ready()
            yield servers
        finally:
            statuses = [server.stop() for server in servers]
        for server, status in zip(servers, statuses, strict=True):
            assert status == 0, server.log()[-3000:]
