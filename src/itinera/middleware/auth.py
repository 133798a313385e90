"""Per route: authenticate the bearer token or API key and put the principal in the scope."""

from __future__ import annotations

from typing import cast

from starlette.types import ASGIApp, Receive, Scope, Send

from itinera import scope as request_scope
from itinera.buckets import key_lookup_bucket
from itinera.db.unit_of_work import UnitOfWork
from itinera.domain.api_keys.repository import ApiKeyRepository
from itinera.errors import AuthenticationError, RateLimitedError, UnavailableError
from itinera.http import error_response
from itinera.middleware.rate_limit import take_tokens
from itinera.security.principal import Principal, Role
from itinera.security.tokens import api_key_org, is_api_key, token_hash


class AuthMiddleware:
    """Every route that is not public passes through here.

    A missing, malformed, expired or forged token is refused with 401 and
    ``WWW-Authenticate: Bearer`` (sent, not raised: this layer sits outside
    Starlette's exception handling); nothing inside runs. Whether the user still
    exists and is enabled is checked by the unit of work, in the statement
    that opens the request's transaction.

    An API key (``itk_<org_id>.<secret>``) is known by its prefix. Its user is
    resolved once, in a short transaction of its own, and remembered for a
    minute (``RememberedApiKeys``): the rate limiter and idempotency need the
    user id before the request's transaction opens. That opening checks the key
    again (``itinera_begin_key``), so the steady state costs no round trip more
    than an access token.
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
        credential = token.strip()
        try:
            if is_api_key(credential):
                principal = await _api_key_principal(scope, credential)
            else:
                principal = request_scope.resources(scope).tokens.verify(credential)
        except AuthenticationError as exc:
            invalid = AuthenticationError(exc.detail, reason="invalid_token")
            await error_response(invalid)(scope, receive, send)
            return
        except (RateLimitedError, UnavailableError) as exc:
            await error_response(exc)(scope, receive, send)
            return
        scope[request_scope.PRINCIPAL] = principal
        await self.app(scope, receive, send)


async def _api_key_principal(scope: Scope, key: str) -> Principal:
    """The key's principal: remembered, or resolved in a transaction of its own.

    Three round trips (open with the tenant set, look up, roll back) once a
    minute per key and replica; an unknown or malformed key is refused as an
    invalid token. The org comes from the key's own prefix: a key presented
    with another org's prefix hashes to nothing stored there.
    """
    org_id = api_key_org(key)
    key_hash = token_hash(key)
    resources = request_scope.resources(scope)
    remembered = resources.api_keys.recall(key_hash)
    if remembered is not None:
        return remembered
    # Like a login attempt, a lookup takes from the address's auth-ip bucket.
    await take_tokens(scope, [key_lookup_bucket(scope)])
    db = resources.db
    uow = UnitOfWork(
        db.requests,
        org_id,
        statement_timeout=resources.settings.db_statement_timeout_seconds,
        round_trips=request_scope.round_trips(scope),
    )
    try:
        resolved = await ApiKeyRepository(uow).resolve(key_hash)
        await uow.rollback()
    finally:
        # Shielded inside: the connection goes back clean even when cancelled.
        await uow.close()
    if resolved is None:
        raise AuthenticationError("the API key is not valid")
    user_id, role = resolved
    principal = Principal(user_id, org_id, cast(Role, role), api_key_hash=key_hash)
    resources.api_keys.remember(principal)
    return principal
