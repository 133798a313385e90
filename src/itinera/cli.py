"""The ``itinera`` command line."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib.metadata
import logging
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, get_args

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from itinera.db.engine import create_engine, session_factory
from itinera.db.pool import DriverPool, driver_connect
from itinera.db.schema import alembic_config
from itinera.db.unit_of_work import UnitOfWork
from itinera.domain.api_keys.repository import ApiKeyRepository
from itinera.domain.orgs.repository import OrgRepository
from itinera.domain.users.repository import UserRepository
from itinera.embedded import embedded_servers, ensure_jwt_secret
from itinera.errors import ItineraError
from itinera.logs import configure_logging
from itinera.security.passwords import PasswordHasher
from itinera.security.tokens import new_api_key, token_hash
from itinera.settings import Settings, SettingsError, load_settings
from itinera_client.schemas.api_keys import ApiKeyCreated
from itinera_client.schemas.auth import Slug
from itinera_client.schemas.types import Email, Name
from itinera_client.schemas.users import Password

log = logging.getLogger("itinera.cli")

DEMO_ORG = "demo"
DEMO_EMAIL = "admin@demo.example"
DEMO_PASSWORD = "itinera-demo"

Command = Callable[[Settings, argparse.Namespace], int]


class UsageError(Exception):
    """An argument or input the API itself would refuse: exit status 2, as argparse's own."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # A command that needs no server reads only its own settings: it runs where
        # the servers' are not set (the container image refuses to start without them).
        settings = load_settings(only=args.only_settings)
    except SettingsError as exc:
        print(f"itinera: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    command: Command = args.run
    try:
        return command(settings, args)
    except (UsageError, SettingsError) as exc:
        print(f"itinera: {exc}", file=sys.stderr)
        return 2
    except ItineraError as exc:
        print(f"itinera: {exc.detail}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="itinera", description=__doc__)
    parser.add_argument("--version", action="version", version=f"itinera {version()}")
    parser.set_defaults(only_settings=None)
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
    user_parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input "
        "(default: prompt for it on the terminal)",
    )
    # Refused with a message of its own: argparse's would repeat the password.
    user_parser.add_argument(
        "--password", nargs="?", action=_RefusePasswordArgument, help=argparse.SUPPRESS
    )
    user_parser.add_argument("--admin", action="store_true", help="give the admin role")
    user_parser.set_defaults(run=create_user)

    key_parser = commands.add_parser(
        "create-api-key", help="create an API key for a user; prints its secret, once"
    )
    key_parser.add_argument("--org", required=True, help="the org's slug")
    key_parser.add_argument("--email", required=True, help="the user the key acts as")
    key_parser.add_argument("--name", required=True, help="what the key is for")
    key_parser.set_defaults(run=create_api_key)

    sweep_parser = commands.add_parser("sweep", help="run every retention policy once")
    sweep_parser.add_argument(
        "--dry-run", action="store_true", help="only count what each policy would delete"
    )
    sweep_parser.set_defaults(run=sweep)

    commands.add_parser(
        "openapi", help="print the OpenAPI document, as GET /openapi.json serves it"
    ).set_defaults(run=openapi, only_settings=("embedding_dim", "log_level"))
    return parser


def version() -> str:
    """The installed distribution's version."""
    try:
        return importlib.metadata.version("itinera")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
        return "0.0.0+unknown"


class _RefusePasswordArgument(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            "--password is not accepted: a password on the command line stays in shell "
            "history and in ps. Type it at the prompt, or pipe it with --password-stdin"
        )


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
    _check(args.slug, Slug, f"org slug {args.slug!r}", _SLUG_RULE)
    _check(args.name, Name, "--name", "")

    async def run(uow: UnitOfWork) -> Any:
        return await OrgRepository(uow).create(args.slug, args.name)

    _print(_run_as_owner(settings, run))
    return 0


def create_user(settings: Settings, args: argparse.Namespace) -> int:
    _check(args.org, Slug, f"--org {args.org!r}", _SLUG_RULE)
    _check(args.email, Email, f"--email {args.email!r}", _EMAIL_RULE)
    password = _read_password() if args.password_stdin else _prompt_password()
    _check(password, Password, "the password", "")

    async def run(uow: UnitOfWork) -> Any:
        org = await OrgRepository(uow).get_by_slug(args.org)
        if org is None:
            raise ItineraError(f"no org with slug {args.org!r}")
        await uow.set_tenant(org.id)
        password_hash = await PasswordHasher().hash(password)
        role = "admin" if args.admin else "member"
        return await UserRepository(uow).create(args.email, password_hash, role)

    _print(_run_as_owner(settings, run))
    return 0


def create_api_key(settings: Settings, args: argparse.Namespace) -> int:
    _check(args.org, Slug, f"--org {args.org!r}", _SLUG_RULE)
    _check(args.email, Email, f"--email {args.email!r}", _EMAIL_RULE)
    _check(args.name, Name, "--name", "")

    async def run(uow: UnitOfWork) -> Any:
        org = await OrgRepository(uow).get_by_slug(args.org)
        if org is None:
            raise ItineraError(f"no org with slug {args.org!r}")
        await uow.set_tenant(org.id)
        user = await UserRepository(uow).find_credentials(args.email)
        if user is None:
            raise ItineraError(f"no user with email {args.email!r} in org {args.org!r}")
        secret = new_api_key(org.id)
        key = await ApiKeyRepository(uow).create(user.id, args.name, token_hash(secret), None)
        return ApiKeyCreated(**msgspec.structs.asdict(key), secret=secret)

    # The secret is shown here only: the database keeps its SHA-256.
    _print(_run_as_owner(settings, run))
    return 0


# The API's own types check the arguments (org slugs as login takes them, emails and
# passwords as POST /v1/users does); these say in words what their patterns mean.
_SLUG_RULE = "lowercase letters, digits and hyphens, starting with a letter or digit"
_EMAIL_RULE = "an address like ana@example.com, with one @ and no spaces"


def _check(value: str, kind: Any, what: str, rule: str) -> None:
    """Refuse ``value`` (exit status 2) unless it is valid as the annotated type ``kind``."""
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError:
        meta = next(m for m in get_args(kind) if isinstance(m, msgspec.Meta))
        bounds = f"{meta.min_length} to {meta.max_length} characters"
        if len(value) < (meta.min_length or 0) or len(value) > (meta.max_length or len(value)):
            raise UsageError(f"{what} must be {bounds} (it has {len(value)})") from None
        raise UsageError(f"{what} is not valid: {rule} ({bounds})") from None


def _read_password() -> str:
    """The first line of standard input, without its line ending."""
    line = sys.stdin.readline()
    if not line:
        raise UsageError("--password-stdin: nothing on standard input")
    return line.removesuffix("\n").removesuffix("\r")


def _prompt_password() -> str:
    """Ask twice on the terminal, echo off."""
    if not sys.stdin.isatty():
        raise UsageError(
            "standard input is not a terminal to prompt on: pipe the password with --password-stdin"
        )
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != password:
        raise UsageError("the passwords do not match")
    return password


def openapi(settings: Settings, args: argparse.Namespace) -> int:
    """The document's very bytes, for client generators: no server is started."""
    from itinera.ops.openapi import _encoded_document

    sys.stdout.buffer.write(_encoded_document(settings.embedding_dim))
    if sys.stdout.isatty():
        sys.stdout.buffer.write(b"\n")
    sys.stdout.buffer.flush()
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
    """A unit of work of the owner role (RLS lets it see every org) on one connection;
    the caller commits, anything left open is rolled back, the connection closed."""
    assert settings.admin_database_url is not None
    pool = DriverPool(
        driver_connect(settings.admin_database_url, settings, application_name="itinera-cli"),
        size=1,
        timeout=settings.db_pool_timeout_seconds,
    )
    uow = UnitOfWork(pool)
    try:
        yield uow
    finally:
        try:
            await uow.close()
        finally:
            await pool.close()


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
