"""The ``itinera`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from itinera.db.engine import create_engine, session_factory
from itinera.db.schema import alembic_config
from itinera.db.unit_of_work import UnitOfWork
from itinera.domain.orgs.repository import OrgRepository
from itinera.domain.users.repository import UserRepository
from itinera.embedded import embedded_servers, ensure_jwt_secret
from itinera.errors import ItineraError
from itinera.logs import configure_logging
from itinera.security.passwords import PasswordHasher
from itinera.settings import Settings, SettingsError, load_settings

log = logging.getLogger("itinera.cli")

DEMO_ORG = "demo"
DEMO_EMAIL = "admin@demo.example"
DEMO_PASSWORD = "itinera-demo"

Command = Callable[[Settings, argparse.Namespace], int]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"itinera: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    command: Command = args.run
    try:
        return command(settings, args)
    except ItineraError as exc:
        print(f"itinera: {exc.detail}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="itinera", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve_parser = commands.add_parser("serve", help="serve the HTTP API")
    serve_parser.add_argument("--host", default=None, help="default: ITINERA_HOST or 127.0.0.1")
    serve_parser.add_argument(
        "--port", type=int, default=None, help="default: ITINERA_PORT or 8000"
    )
    serve_parser.set_defaults(run=serve)

    commands.add_parser("migrate", help="upgrade the schema to this build's head").set_defaults(
        run=migrate
    )
    commands.add_parser("seed", help="create the demo org and its admin (idempotent)").set_defaults(
        run=seed
    )

    org_parser = commands.add_parser("create-org", help="create an org")
    org_parser.add_argument("slug")
    org_parser.add_argument("--name", required=True)
    org_parser.set_defaults(run=create_org)

    user_parser = commands.add_parser("create-user", help="create a user in an org")
    user_parser.add_argument("--org", required=True, help="the org's slug")
    user_parser.add_argument("--email", required=True)
    user_parser.add_argument("--password", required=True)
    user_parser.add_argument("--admin", action="store_true", help="give the admin role")
    user_parser.set_defaults(run=create_user)

    sweep_parser = commands.add_parser("sweep", help="run every retention policy once")
    sweep_parser.add_argument(
        "--dry-run", action="store_true", help="only count what each policy would delete"
    )
    sweep_parser.set_defaults(run=sweep)
    return parser


def serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from itinera.app import create_app
    from itinera.metrics import MULTIPROCESS_DIR_VARIABLE

    settings = settings.replace(
        host=args.host or settings.host, port=settings.port if args.port is None else args.port
    )
    if settings.uses_embedded_redis and not settings.embedded_servers:
        raise ItineraError(
            "REDIS_URL unset, and ITINERA_EMBEDDED_SERVERS=false (as in the container image) "
            "starts no embedded Redis: set REDIS_URL to your Redis"
        )
    settings = ensure_jwt_secret(settings)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then raises the
    # signal again to the handler it found: make that handler unwind through
    # the embedded servers' cleanup and exit 0, rather than die on the spot.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _stop_after_shutdown)
    with embedded_servers(settings, redis=True) as resolved:
        log.info("serving on http://%s:%s", resolved.host, resolved.port)
        options: dict[str, Any] = {
            "host": resolved.host,
            "port": resolved.port,
            "log_config": None,
            # Our own access log replaces uvicorn's; X-Forwarded-For is read by
            # the rate limiter from ITINERA_TRUSTED_PROXIES only (uvicorn would
            # otherwise believe any local peer's).
            "access_log": False,
            "proxy_headers": False,
            "timeout_graceful_shutdown": 30,
        }
        if resolved.workers > 1:
            # Each worker is a process with metric values of its own: prometheus_client's
            # multiprocess mode lets /metrics, whichever worker answers it, add them all
            # up. The directory must be fresh (files left by an earlier run would be
            # added in) and named before uvicorn spawns the workers, which inherit it.
            with tempfile.TemporaryDirectory(prefix="itinera-metrics-") as metrics_dir:
                os.environ[MULTIPROCESS_DIR_VARIABLE] = metrics_dir
                log.info("%s workers share metrics in %s", resolved.workers, metrics_dir)
                uvicorn.run(
                    "itinera.app:create_app_from_environment",
                    factory=True,
                    workers=resolved.workers,
                    **options,
                )
        else:
            uvicorn.run(create_app(resolved), **options)
    return 0


def _stop_after_shutdown(signum: int, frame: object) -> None:
    raise SystemExit(0)


def migrate(settings: Settings, args: argparse.Namespace) -> int:
    from alembic import command

    with embedded_servers(settings, redis=False) as resolved:
        command.upgrade(alembic_config(resolved), "head")
    log.info("schema is at head")
    return 0


def seed(settings: Settings, args: argparse.Namespace) -> int:
    async def run(uow: UnitOfWork) -> None:
        orgs = OrgRepository(uow)
        org = await orgs.get_by_slug(DEMO_ORG) or await orgs.create(DEMO_ORG, "Demo")
        await uow.set_tenant(org.id)
        users = UserRepository(uow)
        if await users.find_credentials(DEMO_EMAIL) is None:
            password_hash = await PasswordHasher().hash(DEMO_PASSWORD)
            await users.create(DEMO_EMAIL, password_hash, "admin")

    _run_as_owner(settings, run)
    print(f"demo credentials: org={DEMO_ORG} email={DEMO_EMAIL} password={DEMO_PASSWORD}")
    return 0


def create_org(settings: Settings, args: argparse.Namespace) -> int:
    async def run(uow: UnitOfWork) -> Any:
        return await OrgRepository(uow).create(args.slug, args.name)

    _print(_run_as_owner(settings, run))
    return 0


def create_user(settings: Settings, args: argparse.Namespace) -> int:
    async def run(uow: UnitOfWork) -> Any:
        org = await OrgRepository(uow).get_by_slug(args.org)
        if org is None:
            raise ItineraError(f"no org with slug {args.org!r}")
        await uow.set_tenant(org.id)
        password_hash = await PasswordHasher().hash(args.password)
        role = "admin" if args.admin else "member"
        return await UserRepository(uow).create(args.email, password_hash, role)

    _print(_run_as_owner(settings, run))
    return 0


def sweep(settings: Settings, args: argparse.Namespace) -> int:
    from itinera.retention.policies import policies
    from itinera.retention.sweeper import SweepReport, count_stale
    from itinera.retention.sweeper import sweep as sweep_policy

    async def run(resolved: Settings) -> list[SweepReport]:
        async with owner_sessions(resolved) as sessions:
            if args.dry_run:
                return [await count_stale(sessions, p) for p in policies(resolved)]
            return [
                await sweep_policy(sessions, p, resolved.sweep_batch_size)
                for p in policies(resolved)
            ]

    with embedded_servers(settings, redis=False) as resolved:
        reports = asyncio.run(run(resolved))
    verb = "would delete" if args.dry_run else "deleted"
    for report in reports:
        steps = ", ".join(f"{rows} {step}" for step, rows in report.rows.items())
        note = " (skipped: another process is sweeping it)" if report.skipped else ""
        print(f"{report.policy}: {verb} {steps}{note}")
    return 0


def _run_as_owner(settings: Settings, work: Callable[[UnitOfWork], Awaitable[Any]]) -> Any:
    """Run ``work`` in one transaction on the owner role, embedded server included."""
    with embedded_servers(settings, redis=False) as resolved:

        async def run() -> Any:
            async with owner_unit_of_work(resolved) as uow:
                result = await work(uow)
                await uow.commit()
                return result

        return asyncio.run(run())


@asynccontextmanager
async def owner_unit_of_work(settings: Settings) -> AsyncIterator[UnitOfWork]:
    """A unit of work of the owner role (RLS lets it see every org) on a one-connection
    engine; the caller commits, anything left open is rolled back, the engine disposed."""
    assert settings.admin_database_url is not None
    engine = create_engine(
        settings.admin_database_url,
        settings,
        application_name="itinera-cli",
        pool_size=1,
        driver_transactions=True,
    )
    uow = UnitOfWork(engine)
    try:
        yield uow
    finally:
        try:
            await uow.close()
        finally:
            await engine.dispose()


@asynccontextmanager
async def owner_sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions of the owner role on a one-connection engine, disposed afterwards."""
    assert settings.admin_database_url is not None
    engine = create_engine(
        settings.admin_database_url, settings, application_name="itinera-cli", pool_size=1
    )
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def _print(value: Any) -> None:
    print(msgspec.json.encode(value).decode())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
