"""The application factory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Router
from starlette.types import ASGIApp

from itinera.buckets import per_user
from itinera.lifespan import make_lifespan
from itinera.metrics import Metrics
from itinera.middleware.auth import AuthMiddleware
from itinera.middleware.rate_limit import RateLimitMiddleware
from itinera.middleware.request_context import RequestContextMiddleware, TracingMiddleware
from itinera.middleware.request_limits import RequestLimitsMiddleware
from itinera.middleware.transaction import TransactionMiddleware
from itinera.operations import api_operations
from itinera.ops import openapi
from itinera.routing import (
    EndpointApp,
    Idempotency,
    IndexedRouter,
    Operation,
    build_routes,
    not_found,
)
from itinera.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor

CORS_ALLOWED_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "If-None-Match",
    "X-Request-ID",
]
CORS_EXPOSED_HEADERS = [
    "ETag",
    "Location",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "X-Request-ID",
    "Idempotent-Replayed",
]


def all_operations() -> list[Operation]:
    return [*api_operations(), *openapi.api.operations]


def operation_chain(operation: Operation) -> ASGIApp:
    """The per-route layers, outermost first: auth ▸ rate limit ▸ transaction ▸ endpoint."""
    app: ASGIApp = EndpointApp(operation)
    idempotent = operation.idempotency is not Idempotency.NONE
    if idempotent and (operation.public or not operation.uses_database):
        raise ValueError(f"{operation.path}: idempotency needs an authenticated database route")
    if operation.admin_only and (operation.public or not operation.uses_database):
        raise ValueError(f"{operation.path}: admin rights are checked in the database")
    if operation.uses_database:
        app = TransactionMiddleware(
            app,
            requires_admin=operation.admin_only,
            idempotent=idempotent,
            key_required=operation.idempotency is Idempotency.REQUIRED,
        )
    if operation.bucket is not None:
        rule = per_user(operation.bucket) if isinstance(operation.bucket, str) else operation.bucket
        if operation.public and isinstance(operation.bucket, str):
            raise ValueError(f"{operation.path}: a public route needs a bucket rule, not a name")
        app = RateLimitMiddleware(app, rule)
    if not operation.public:
        app = AuthMiddleware(app)
    return app


def create_app(
    settings: Settings,
    extra_operations: Sequence[Operation] = (),
    *,
    span_processor: SpanProcessor | None = None,
) -> ASGIApp:
    """Build the service for settings whose server URLs and secret are resolved.

    ``extra_operations`` are served beside the API (tests use it for probes);
    ``span_processor`` receives every span and turns tracing on (tests pass an
    in-memory exporter's).

    A Starlette router under our own middleware, without the Starlette
    application's exception layers: errors become problem details where they
    happen (endpoint, middleware, router), and the outermost middleware
    answers anything left over, so those layers would only cost time.
    """
    metrics = Metrics()
    app: ASGIApp = IndexedRouter(
        Router(
            routes=build_routes([*all_operations(), *extra_operations], operation_chain),
            default=not_found,
            lifespan=make_lifespan(settings, metrics, span_processor),
        )
    )
    app = RequestLimitsMiddleware(
        app,
        max_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        body_timeout=settings.body_timeout_seconds,
    )
    if settings.cors_origins:
        app = CORSMiddleware(
            app,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=CORS_ALLOWED_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        )
    app = RequestContextMiddleware(app, metrics=metrics)
    if settings.tracing or span_processor is not None:
        app = TracingMiddleware(app)
    return app


def create_app_from_environment() -> ASGIApp:
    """Factory for multi-worker uvicorn (real servers only): each worker reads the environment.

    ``itinera serve`` has named a fresh metrics directory in the environment
    the worker inherits, so its metrics add up with the other workers' (see
    ``itinera.metrics``).
    """
    from itinera.embedded import ensure_jwt_secret
    from itinera.logs import configure_logging
    from itinera.metrics import RetireProcessAtShutdown
    from itinera.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    return RetireProcessAtShutdown(create_app(ensure_jwt_secret(settings)))
