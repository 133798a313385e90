"""Configuration, read from the environment once into a typed, immutable object.

This is the only module that reads ``os.environ``. ``DATABASE_URL``,
``ITINERA_ADMIN_DATABASE_URL`` and ``REDIS_URL`` keep their plain names; every
other field ``foo_bar`` is read from ``ITINERA_FOO_BAR``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

PositiveSeconds = Annotated[int, Meta(ge=1)]
PositiveFloat = Annotated[float, Meta(gt=0)]

PLAIN_NAMES = {
    "database_url": "DATABASE_URL",
    "admin_database_url": "ITINERA_ADMIN_DATABASE_URL",
    "redis_url": "REDIS_URL",
    "otel_exporter_otlp_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "otel_traces_exporter": "OTEL_TRACES_EXPORTER",
    "otel_service_name": "OTEL_SERVICE_NAME",
}
LIST_FIELDS = frozenset({"cors_origins", "trusted_proxies"})

DAY = 86_400


class SettingsError(ValueError):
    """The environment holds a setting that cannot be used."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Servers. Unset database or Redis URL means: start the embedded server.
    database_url: str | None = None
    admin_database_url: str | None = None
    redis_url: str | None = None
    # REDIS_URL names one node of a Redis Cluster: the client discovers the rest.
    redis_cluster: bool = False
    # False where no embedded server can run (the container image sets it): an
    # unset database URL is then an error that names it, not a cue to start one.
    embedded_servers: bool = True
    data_dir: str = ".itinera"

    # HTTP
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65_535)] = 8000
    workers: Annotated[int, Meta(ge=1, le=64)] = 1
    cors_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    max_body_bytes: Annotated[int, Meta(ge=1024)] = 1_048_576
    max_header_bytes: Annotated[int, Meta(ge=1024)] = 16_384
    log_level: str = "INFO"

    # Traces: OpenTelemetry's standard variables. Nothing is traced unless an
    # exporter is named (an OTLP endpoint, or OTEL_TRACES_EXPORTER other than "none").
    otel_exporter_otlp_endpoint: str | None = None
    otel_traces_exporter: str | None = None
    otel_service_name: str = "itinera"

    # Auth
    jwt_secret: str | None = None
    jwt_issuer: str = "itinera"
    jwt_audience: str = "itinera-api"
    refresh_token_ttl_seconds: PositiveSeconds = 30 * DAY

    # Data
    embedding_dim: Annotated[int, Meta(ge=1, le=2000)] = 1536
    migrations_dir: str | None = None

    # Connection pools (per role and process)
    db_pool_size: Annotated[int, Meta(ge=1)] = 10
    db_max_overflow: Annotated[int, Meta(ge=0)] = 5
    db_pool_timeout_seconds: PositiveFloat = 5.0
    db_pool_recycle_seconds: PositiveSeconds = 1800
    db_pool_pre_ping: bool = False
    db_connect_timeout_seconds: PositiveFloat = 5.0
    db_command_timeout_seconds: PositiveFloat = 30.0
    # asyncpg's prepared-statement cache per connection; 0 behind a pooler that
    # cannot follow prepared statements across transactions (PgBouncer < 1.21
    # in transaction mode): every statement is then prepared unnamed, per use.
    db_statement_cache_size: Annotated[int, Meta(ge=0)] = 100
    redis_timeout_seconds: PositiveFloat = 0.25
    readiness_timeout_seconds: PositiveFloat = 2.0
    # Bounded work: no statement of a request, and no pause of a request body, outlasts these.
    db_statement_timeout_seconds: PositiveFloat = 5.0
    body_timeout_seconds: PositiveFloat = 10.0

    # Rate limits (tokens per minute per user; auth per client)
    rate_limit_agent_per_minute: Annotated[int, Meta(ge=1)] = 5
    rate_limit_crud_per_minute: Annotated[int, Meta(ge=1)] = 60
    rate_limit_auth_per_minute: Annotated[int, Meta(ge=1)] = 10
    rate_limit_auth_ip_per_minute: Annotated[int, Meta(ge=1)] = 60
    # Agent thread state (checkpoints and pending writes): a running graph saves
    # several times per step, which the crud bucket would throttle.
    rate_limit_state_per_minute: Annotated[int, Meta(ge=1)] = 1200
    rate_limit_fail_open: bool = True

    # Idempotency
    idempotency_ttl_seconds: PositiveSeconds = DAY
    idempotency_max_stored_bytes: Annotated[int, Meta(ge=1024)] = 262_144

    # Retention
    sweep_interval_seconds: PositiveFloat = 300.0
    sweep_batch_size: Annotated[int, Meta(ge=1, le=100_000)] = 1000
    sweepers_enabled: bool = True
    retention_agent_runs_seconds: PositiveSeconds = 30 * DAY
    retention_tool_calls_seconds: PositiveSeconds = DAY
    retention_draft_itineraries_seconds: PositiveSeconds = 90 * DAY
    retention_final_itineraries_seconds: PositiveSeconds = 90 * DAY
    retention_revoked_refresh_tokens_seconds: PositiveSeconds = 7 * DAY
    retention_threads_seconds: PositiveSeconds = 30 * DAY

    @property
    def uses_embedded_postgres(self) -> bool:
        return self.database_url is None and self.admin_database_url is None

    @property
    def tracing(self) -> bool:
        exporter = (self.otel_traces_exporter or "").strip().lower()
        if exporter == "none":
            return False
        return bool(exporter) or bool(self.otel_exporter_otlp_endpoint)

    @property
    def uses_embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies)

    def replace(self, **changes: Any) -> Settings:
        return msgspec.structs.replace(self, **changes)


def env_name(field: str) -> str:
    return PLAIN_NAMES.get(field, "ITINERA_" + field.upper())


def load_settings(
    environ: Mapping[str, str] | None = None, *, only: Collection[str] | None = None
) -> Settings:
    """Build settings from ``environ`` (the process environment by default).

    ``only`` names the fields to read; the others keep their defaults (a
    command that needs no server reads nothing about servers).
    """
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for field in Settings.__struct_fields__ if only is None else only:
        value = env.get(env_name(field))
        if value is None or value == "":
            continue
        if field in LIST_FIELDS:
            raw[field] = [item.strip() for item in value.split(",") if item.strip()]
        else:
            raw[field] = value
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_name_the_variable(str(exc))) from exc
    _check(settings)
    return settings


def _name_the_variable(message: str) -> str:
    """Turn msgspec's ``- at `$.port``` into the environment variable's name."""
    head, sep, path = message.rpartition(" - at `$.")
    if not sep:
        return message
    field = path.rstrip("`").split("[", 1)[0]
    return f"{env_name(field)}: {head}"


def _check(settings: Settings) -> None:
    try:
        settings.trusted_proxy_networks  # noqa: B018 - parse for the error
    except ValueError as exc:
        raise SettingsError(f"ITINERA_TRUSTED_PROXIES: {exc}") from exc
    if settings.redis_cluster and settings.redis_url is None:
        raise SettingsError("ITINERA_REDIS_CLUSTER=true needs REDIS_URL (a node of the cluster)")
    if settings.uses_embedded_postgres and settings.workers > 1:
        raise SettingsError("ITINERA_WORKERS > 1 needs real servers (set DATABASE_URL)")
    if not settings.embedded_servers:
        unset = [
            env_name(field)
            for field in ("database_url", "admin_database_url")
            if getattr(settings, field) is None
        ]
        if unset:
            raise SettingsError(
                f"{' and '.join(unset)} unset, and ITINERA_EMBEDDED_SERVERS=false (as in the "
                "container image) starts no embedded PostgreSQL: set DATABASE_URL and "
                "ITINERA_ADMIN_DATABASE_URL to your PostgreSQL (and REDIS_URL to your Redis)"
            )
