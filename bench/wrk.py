"""Running wrk and reading its report."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA_DIR = Path(__file__).parent / "lua"
THREADS = 2
CONNECTIONS = 64
# wrk's default (2 s) drops slower requests from the latency distribution and only
# counts them as socket timeouts, which would flatter p99 under overload.
TIMEOUT_SECONDS = 10

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)


class WrkError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int  # wrk counts 3xx as success: "Non-2xx or 3xx responses"
    socket_errors: int  # connect + read + write + timeout
    output: str


def ensure_wrk() -> str:
    """The path of wrk, installed from Debian's package when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise WrkError("wrk is not installed: install it (Debian: sudo apt-get install -y wrk)")
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise WrkError("wrk is not installed, and there is no apt-get to install it with")
    print("bench: wrk is missing: apt-get install -y wrk", flush=True)
    install = [apt_get, "install", "-y", "-q", "wrk"]
    if subprocess.run(install, check=False).returncode != 0:  # noqa: S603
        # A fresh machine may have no package lists yet.
        subprocess.run([apt_get, "update", "-q"], check=True)  # noqa: S603
        subprocess.run(install, check=True)  # noqa: S603
    found = shutil.which("wrk")
    if not found:
        raise WrkError("apt-get installed wrk, but it is not on PATH")
    return found


def run_wrk(
    wrk: str,
    url: str,
    seconds: float,
    *,
    headers: dict[str, str] | None = None,
    script: str | None = None,
    script_args: tuple[str, ...] = (),
) -> WrkResult:
    command = [
        wrk,
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={TIMEOUT_SECONDS}s",
        "--latency",
    ]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(LUA_DIR / script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise WrkError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return parse(done.stdout)


def parse(output: str) -> WrkResult:
    """Requests/s, p50/p99 from ``--latency``, non-2xx and socket errors from wrk's report."""
    rps = _RPS.search(output)
    total = _TOTAL.search(output)
    percentiles = {int(p): float(v) * _UNIT_MS[unit] for p, v, unit in _PERCENTILE.findall(output)}
    if rps is None or total is None:
        raise WrkError(f"cannot read wrk's report:\n{output}")
    non_2xx = _NON_2XX.search(output)
    errors = _SOCKET_ERRORS.search(output)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=float(total.group(2)) * _UNIT_MS[total.group(3)] / 1000.0,
        rps=float(rps.group(1)),
        # No request finished at all: wrk prints no distribution.
        p50_ms=percentiles.get(50, float("nan")),
        p99_ms=percentiles.get(99, float("nan")),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        output=output,
    )
