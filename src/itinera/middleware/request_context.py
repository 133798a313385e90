"""Outermost layer: request id, one access-log line per request, and the last-resort 500."""

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
                    extra={"request_id": request_id, "method": scope["method"]},
                )
            else:
                error_log.exception(
                    "unhandled error", extra={"request_id": request_id, "method": scope["method"]}
                )
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
                    },
                )


def _request_id(scope: Scope) -> str:
    offered = request_scope.header(scope, REQUEST_ID_HEADER)
    if offered is not None and SANE_REQUEST_ID.fullmatch(offered):
        return offered
    return str(uuid_utils.compat.uuid7())
