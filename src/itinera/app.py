"""The application factory."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from itinera.domain.agent_runs import routes as agent_run_routes
from itinera.domain.auth import routes as auth_routes
from itinera.domain.chat import routes as chat_routes
from itinera.domain.destinations import routes as destination_routes
from itinera.domain.itineraries import routes as itinerary_routes
from itinera.domain.knowledge import routes as knowledge_routes
from itinera.domain.leads import routes as lead_routes
from itinera.domain.users import routes as user_routes
from itinera.http import NOT_FOUND, problem_response
from itinera.lifespan import make_lifespan
from itinera.metrics import Metrics
from itinera.middleware.auth import AuthMiddleware
from itinera.middleware.idempotency import IdempotencyMiddleware
from itinera.middleware.rate_limit import RateLimitMiddleware, per_user
from itinera.middleware.request_context import RequestContextMiddleware
from itinera.middleware.request_limits import RequestLimitsMiddleware
from itinera.middleware.unit_of_work import UnitOfWorkMiddleware
from itinera.ops import health, openapi
from itinera.routing import EndpointApp, Idempotency, Operation, build_routes
from itinera.settings import Settings

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
    return [
        *health.api.operations,
        *auth_routes.api.operations,
        *user_routes.api.operations,
        *destination_routes.api.operations,
        *knowledge_routes.api.operations,
        *agent_run_routes.api.operations,
        *itinerary_routes.api.operations,
        *chat_routes.api.operations,
        *lead_routes.api.operations,
        *openapi.api.operations,
    ]


def operation_chain(operation: Operation) -> ASGIApp:
    """The per-route layers, innermost first: auth ▸ rate limit ▸ unit of work ▸ idempotency."""
    app: ASGIApp = EndpointApp(operation)
    if operation.idempotency is not Idempotency.NONE:
        if operation.public:
            raise ValueError(f"{operation.path}: idempotency needs an authenticated route")
        app = IdempotencyMiddleware(app, required=operation.idempotency is Idempotency.REQUIRED)
    if operation.uses_database:
        app = UnitOfWorkMiddleware(app)
    if operation.bucket is not None:
        rule = per_user(operation.bucket) if isinstance(operation.bucket, str) else operation.bucket
        if operation.public and isinstance(operation.bucket, str):
            raise ValueError(f"{operation.path}: a public route needs a bucket rule, not a name")
        app = RateLimitMiddleware(app, rule)
    if not operation.public:
        app = AuthMiddleware(app)
    return app


async def http_exception_problem(request: Request, exc: Exception) -> Response:
    """The router's own 404 and 405, as problem details."""
    assert isinstance(exc, HTTPException)
    problem_type = NOT_FOUND if exc.status_code == 404 else "about:blank"
    return problem_response(exc.status_code, exc.detail, type=problem_type, headers=exc.headers)


def create_app(settings: Settings, extra_operations: Sequence[Operation] = ()) -> Starlette:
    """Build the service for settings whose server URLs and secret are resolved.

    ``extra_operations`` are served beside the API (tests use it for probes).
    """
    metrics = Metrics()
    middleware = [Middleware(RequestContextMiddleware, metrics=metrics)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=CORS_ALLOWED_HEADERS,
                expose_headers=CORS_EXPOSED_HEADERS,
                max_age=600,
            )
        )
    middleware.append(
        Middleware(
            RequestLimitsMiddleware,
            max_bytes=settings.max_body_bytes,
            max_header_bytes=settings.max_header_bytes,
        )
    )
    return Starlette(
        routes=build_routes([*all_operations(), *extra_operations], operation_chain),
        middleware=middleware,
        exception_handlers={HTTPException: http_exception_problem},
        lifespan=make_lifespan(settings, metrics),
    )


def create_app_from_environment() -> Starlette:
    """Factory for multi-worker uvicorn (real servers only): each worker reads the environment."""
    from itinera.embedded import ensure_jwt_secret
    from itinera.logs import configure_logging
    from itinera.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(ensure_jwt_secret(settings))
