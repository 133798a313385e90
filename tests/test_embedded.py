"""The configuration-free path: `itinera migrate`, `seed` and `serve` on embedded servers."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.processes import child_environment, free_port, run_cli

pytestmark = pytest.mark.slow


def _postgres_processes_for(data_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and any(str(data_dir) in part for part in cmdline):
            found.append(process)
    return found


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_on_embedded_servers_from_nothing(tmp_path: Path, stop: signal.Signals) -> None:
    env = {"ITINERA_DATA_DIR": str(tmp_path / ".itinera")}
    assert run_cli("migrate", env=env, timeout=120).returncode == 0
    seeded = run_cli("seed", env=env)
    assert seeded.returncode == 0, seeded.stderr
    assert not _postgres_processes_for(tmp_path), "the last command out stops the server"

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "itinera", "serve", "--port", str(port)],
        env=child_environment(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready is not None, "the service never answered"
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ok"
    finally:
        server.send_signal(stop)
        _, log = server.communicate(timeout=30)
    assert server.returncode == 0
    assert "using embedded PostgreSQL" in log
    assert "using embedded Redis" in log
    assert (tmp_path / ".itinera" / "jwt_secret").stat().st_mode & 0o077 == 0
    assert not _postgres_processes_for(tmp_path), "stopping serve stops the servers it started"
