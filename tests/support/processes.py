"""Running the real ``itinera`` command in a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping

from itinera.settings import PLAIN_NAMES

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
