"""What a run starts: the embedded PostgreSQL, the service, the ceiling app; and their end.

This process attaches to the embedded PostgreSQL first and detaches last, so
the server lives for the whole run (each ``itinera`` command attaches to the
same data directory) and stops when we leave. With ``BENCH_WORKERS`` it also
starts a redis-server of its own, and the service in turn for each worker
count, on that server and the embedded PostgreSQL named by URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType

from bench import processes
from bench.processes import BIN
from itinera.db.bootstrap import APP_ROLE, OWNER_ROLE
from itinera.embedded import DATABASE_NAME, EmbeddedPostgres

REDIS_SERVER = "/usr/bin/redis-server"


class Stack:
    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = env
        self.postgres = EmbeddedPostgres(data_dir / "pgdata")
        self._attached = False
        self.service: subprocess.Popen[bytes] | None = None
        self.ceiling: subprocess.Popen[bytes] | None = None
        self.redis: subprocess.Popen[bytes] | None = None
        # The service's app CPU is its whole process tree (uvicorn's supervisor and workers).
        self.service_tree = False
        self.service_url = ""
        self.ceiling_url = ""

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def log(self, name: str) -> Path:
        return self.data_dir / f"{name}.log"

    def start_database(self) -> None:
        """Start (initdb on first use) the embedded server, migrate and seed."""
        self.postgres.start()
        self._attached = True
        processes.run_command(["migrate"], self.env, self.log("migrate"))
        processes.run_command(["seed"], self.env, self.log("seed"))

    @property
    def owner_dsn(self) -> str:
        """asyncpg's DSN for the owner role over the embedded server's unix socket."""
        return f"postgresql://{OWNER_ROLE}@/{DATABASE_NAME}?host={self.postgres.socket_dir}"

    @property
    def owner_url(self) -> str:
        """The same for SQLAlchemy (``postgresql+asyncpg://``)."""
        return str(self.postgres.url(OWNER_ROLE))

    @property
    def app_url(self) -> str:
        """SQLAlchemy's URL for the app role over the embedded server's unix socket."""
        return str(self.postgres.url(APP_ROLE))

    def cpu_meter(self, process: subprocess.Popen[bytes] | None) -> processes.CpuMeter:
        """CPU of ``process`` (None: this one) and of the embedded server's backends."""
        pid = os.getpid() if process is None else process.pid
        tree = process is not None and process is self.service and self.service_tree
        return processes.CpuMeter(pid, processes.postmaster_pid(self.data_dir), tree=tree)

    def start_redis(self) -> str:
        """A redis-server of this run's own on a unix socket in its data dir, no persistence."""
        socket_path = (self.data_dir / "redis.sock").resolve()
        command = [
            REDIS_SERVER,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.data_dir.resolve()),
            "--daemonize",
            "no",
        ]
        self.redis = processes.start(command, self.env, self.log("redis"))
        deadline = time.monotonic() + 30
        while not processes.redis_ping(socket_path):
            if self.redis.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server did not start:\n{processes.tail(self.log('redis'))}"
                )
            time.sleep(0.1)
        return f"unix://{socket_path}"

    def start_service(self, env: dict[str, str] | None = None, workers: int | None = None) -> str:
        """``itinera serve`` on the embedded defaults; or, given ``workers``, on the
        settings in ``env`` with that many uvicorn workers, its whole process tree
        metered as the app."""
        port = processes.free_port()
        command = [str(BIN / "itinera"), "serve", "--port", str(port)]
        log = self.log("service" if workers is None else f"service-{workers}w")
        self.service = processes.start(command, self.env if env is None else env, log)
        self.service_tree = workers is not None
        self.service_url = f"http://127.0.0.1:{port}"
        processes.wait_http(f"{self.service_url}/ready", self.service, log)
        if workers is not None and workers > 1:
            processes.wait_workers(self.service, workers, log)
        return self.service_url

    def stop_service(self) -> None:
        """Stop the service (and whatever it started that outlives it), to start another."""
        for leftover in processes.stop_tree(self.service):
            print(f"bench: stopped a leftover {leftover}", file=sys.stderr)
        self.service = None
        self.service_url = ""

    def start_ceiling(self, org_id: uuid.UUID, user_id: uuid.UUID, probe_id: uuid.UUID) -> str:
        port = processes.free_port()
        command = [
            sys.executable,
            "-m",
            "bench.ceiling",
            f"--port={port}",
            f"--dsn={self.owner_dsn}",
            f"--org-id={org_id}",
            f"--user-id={user_id}",
            "--pool-size=10",
        ]
        self.ceiling = processes.start(command, self.env, self.log("ceiling"))
        self.ceiling_url = f"http://127.0.0.1:{port}"
        probe = f"{self.ceiling_url}/itineraries/{probe_id}"
        processes.wait_http(probe, self.ceiling, self.log("ceiling"))
        return self.ceiling_url

    def close(self) -> None:
        """Stop everything, in order, whatever failed before."""
        try:
            if self.service_tree:
                self.stop_service()
            else:
                processes.stop(self.service)  # SIGINT: uvicorn drains, then the embedded servers go
            processes.stop(self.ceiling)
            processes.stop(self.redis)
        finally:
            if self._attached:
                self._attached = False
                self.postgres.close()  # the last one out stops the server
            for leftover in processes.stop_leftovers(self.data_dir):
                print(f"bench: stopped a leftover {leftover}", file=sys.stderr)
