"""Outermost layers: request id, one access-log line per request, the last-resort 500, and
(only when tracing is on) the request's server span around them."""

from __future__ import annotations

import logging
import re
import time

import uuid_utils.compat
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from itinera import scope as request_scope
from itinera.http import is_unavailable, unexpected_error_response
from itinera.metrics import Metrics

access_log = logging.getLogger("itinera.access")
error_log = logging.getLogger("itinera.errors")

REQUEST_ID_HEADER = b"x-request-id"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# The request's trace id, left in the scope by TracingMiddleware for the log line.
TRACE_ID = "itinera.trace_id"


class TracingMiddleware:
    """Outside everything, and only when tracing is on: the request's server span.

    A child of the caller's W3C ``traceparent`` when one came. It is current
    while the request runs, so the unit of work's SQL spans and the limiter's
    Redis span are its children; it is named by the route template once the
    router has matched one, and its trace id goes into the access-log line.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = request_scope.resources(scope).tracer if scope["type"] == "http" else None
        if tracer is None:
            await self.app(scope, receive, send)
            return
        span = tracer.start_request(
            scope["method"], scope["path"], scope.get("scheme", "http"), scope["headers"]
        )
        scope[TRACE_ID] = span.trace_id
        status = 500  # unless a response starts: what the client is left with
        error: BaseException | None = None

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except BaseException as exc:  # cancellation too: the span must end
            error = exc
            raise
        finally:
            span.end(request_scope.route_template(scope), status, error)


class RequestContextMiddleware:
    """Sees every response, the 500s included, and stamps each with ``X-Request-ID``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope[request_scope.REQUEST_ID] = request_id
        round_trips = request_scope.round_trips(scope)
        status = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER
                ]
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as exc:
            if is_unavailable(exc):
                error_log.warning(
                    "dependency unavailable: %s",
                    type(exc).__name__,
                    extra=_error_fields(scope, request_id),
                )
            else:
                error_log.exception("unhandled error", extra=_error_fields(scope, request_id))
            if response_started:
                raise
            response = unexpected_error_response(exc)
            await response(scope, receive, send_with_request_id)
        finally:
            duration = time.perf_counter() - started
            route = request_scope.route_template(scope) or "unmatched"
            self.metrics.observe_request(scope["method"], route, status, duration, round_trips)
            if access_log.isEnabledFor(logging.INFO):
                principal = request_scope.principal(scope)
                access_log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "org": str(principal.org_id) if principal else None,
                        "user": str(principal.user_id) if principal else None,
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(duration * 1000, 3),
                        "db_round_trips": round_trips.database,
                        "redis_round_trips": round_trips.redis,
                        "trace_id": scope.get(TRACE_ID),
                    },
                )


def _request_id(scope: Scope) -> str:
    offered = request_scope.header(scope, REQUEST_ID_HEADER)
    if offered is not None and SANE_REQUEST_ID.fullmatch(offered):
        return offered
    return str(uuid_utils.uuid7())


def _error_fields(scope: Scope, request_id: str) -> dict[str, str | None]:
    return {"request_id": request_id, "method": scope["method"], "trace_id": scope.get(TRACE_ID)}
