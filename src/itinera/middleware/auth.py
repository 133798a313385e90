"""Per route: authenticate the bearer token and put the principal in the scope."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from itinera import scope as request_scope
from itinera.errors import AuthenticationError
from itinera.http import error_response


class AuthMiddleware:
    """Every route that is not public passes through here.

    A missing, malformed, expired or forged token is refused with 401 and
    ``WWW-Authenticate: Bearer`` (sent, not raised: this layer sits outside
    Starlette's exception handling); nothing inside runs. Whether the user still
    exists and is enabled is checked by the unit of work, in the statement
    that opens the request's transaction.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lines = request_scope.header_lines(scope, b"authorization")
        if not lines:
            missing = AuthenticationError("a bearer token is required")
            await error_response(missing)(scope, receive, send)
            return
        if len(lines) > 1:
            # Whoever is authorised must not depend on which line a proxy or we read.
            several = AuthenticationError("send one Authorization header", reason="invalid_request")
            await error_response(several)(scope, receive, send)
            return
        authorization = lines[0]
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            other = AuthenticationError("use the Bearer scheme", reason="invalid_request")
            await error_response(other)(scope, receive, send)
            return
        tokens = request_scope.resources(scope).tokens
        try:
            principal = tokens.verify(token.strip())
        except AuthenticationError as exc:
            invalid = AuthenticationError(exc.detail, reason="invalid_token")
            await error_response(invalid)(scope, receive, send)
            return
        scope[request_scope.PRINCIPAL] = principal
        await self.app(scope, receive, send)
