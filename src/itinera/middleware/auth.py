"""Per route: authenticate the bearer token and put the principal in the scope."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from itinera import scope as request_scope
from itinera.errors import AuthenticationError
from itinera.http import problem_response


class AuthMiddleware:
    """Every route that is not public passes through here.

    A missing, malformed, expired or forged token is refused with 401 and
    ``WWW-Authenticate: Bearer``; nothing inside runs. Whether the user still
    exists and is enabled is checked by the unit of work, in the statement
    that opens the request's transaction.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lines = request_scope.header_lines(scope, b"authorization")
        if not lines:
            await _refuse(scope, receive, send, "a bearer token is required", error=None)
            return
        if len(lines) > 1:
            # Whoever is authorised must not depend on which line a proxy or we read.
            detail = "send one Authorization header"
            await _refuse(scope, receive, send, detail, error="invalid_request")
            return
        authorization = lines[0]
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await _refuse(scope, receive, send, "use the Bearer scheme", error="invalid_request")
            return
        tokens = request_scope.resources(scope).tokens
        try:
            principal = tokens.verify(token.strip())
        except AuthenticationError as exc:
            await _refuse(scope, receive, send, exc.detail, error="invalid_token")
            return
        scope[request_scope.PRINCIPAL] = principal
        await self.app(scope, receive, send)


async def _refuse(
    scope: Scope, receive: Receive, send: Send, detail: str, error: str | None
) -> None:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    response = problem_response(401, detail, headers={"WWW-Authenticate": challenge})
    await response(scope, receive, send)
