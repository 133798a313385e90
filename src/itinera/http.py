"""Wire codecs, RFC 9457 problem responses, and the one table that maps errors to them.

Problem ``type`` values (documented in docs/api.md):

    /problems/validation               422  the body or a parameter breaks the schema or a rule
    /problems/malformed                400  the body is not JSON; a bad cursor or header
    /problems/not-found                404  no such resource in the caller's org; no such route
    /problems/duplicate                409  a unique rule would be broken
    /problems/conflict                 409  the resource's state forbids the operation
    /problems/idempotency-key-reused   422
    /problems/idempotency-in-flight    409
    /problems/precondition-failed      412
    /problems/precondition-required    428
    https://iana.org/assignments/http-problem-types#quota-exceeded   429
    about:blank                        401, 403, 405, 408, 413, 415, 431, 500, 503

Every refusal, the middleware's too, is an ``itinera.errors`` error answered by
``error_response``: ``ERROR_TABLE`` gives its status and type, ``_fields`` the
header fields its facts call for.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
import redis.exceptions
from sqlalchemy import exc as sa_exc
from starlette.responses import Response

from itinera import errors
from itinera.db.errors import QUERY_CANCELED, sqlstate
from itinera_client.schemas.problems import FieldProblem, Problem

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
# Bodies that carry bytes (LangGraph's serialised state) may also be MessagePack,
# where bytes stay bytes; problems are JSON whatever the body was.
MSGPACK = "application/msgpack"

VALIDATION = "/problems/validation"
MALFORMED = "/problems/malformed"
NOT_FOUND = "/problems/not-found"
DUPLICATE = "/problems/duplicate"
CONFLICT = "/problems/conflict"
IDEMPOTENCY_KEY_REUSED = "/problems/idempotency-key-reused"
IDEMPOTENCY_IN_FLIGHT = "/problems/idempotency-in-flight"
PRECONDITION_FAILED = "/problems/precondition-failed"
PRECONDITION_REQUIRED = "/problems/precondition-required"
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
BLANK = "about:blank"


encoder = msgspec.json.Encoder()

# What decoding a hostile body can raise besides a validation error: not JSON,
# not UTF-8 inside a string, nested past the decoder's depth.
UNDECODABLE: tuple[type[Exception], ...] = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


class JSONResponse(Response):
    """A response whose content is encoded by msgspec (Structs, dicts, lists)."""

    media_type = JSON

    def render(self, content: Any) -> bytes:
        return encoder.encode(content)


msgpack_encoder = msgspec.msgpack.Encoder()


class MsgpackResponse(Response):
    """A response whose content is encoded by msgspec as MessagePack."""

    media_type = MSGPACK

    def render(self, content: Any) -> bytes:
        return msgpack_encoder.encode(content)


# RFC 9110's names where Python's HTTPStatus (before 3.13) still has RFC 7231's.
_STATUS_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}
# A problem type of our own or IANA's is summed up by its own title (RFC 9457 §3.1.3).
_TYPE_TITLES = {QUOTA_EXCEEDED: "Quota exceeded"}


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    type: str = BLANK,
    title: str | None = None,
    errors: list[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
    violated_policies: list[str] | None = None,
) -> Response:
    problem = Problem(
        type=type,
        title=title or _title(status, type),
        status=status,
        detail=detail,
        errors=errors,
        violated_policies=violated_policies,
    )
    return Response(
        encoder.encode(problem), status_code=status, headers=headers, media_type=PROBLEM_JSON
    )


def _title(status: int, problem_type: str) -> str:
    return _TYPE_TITLES.get(problem_type) or _STATUS_TITLES.get(status) or HTTPStatus(status).phrase


# Looked up along the exception's MRO, so a subclass without a row of its own
# answers as its parent; tests/test_errors.py checks every class in errors.py has one.
ERROR_TABLE: dict[type[errors.ItineraError], tuple[int, str]] = {
    errors.NotFoundError: (404, NOT_FOUND),
    errors.MethodNotAllowedError: (405, BLANK),
    errors.DuplicateError: (409, DUPLICATE),
    errors.ConflictError: (409, CONFLICT),
    errors.IdempotencyInFlightError: (409, IDEMPOTENCY_IN_FLIGHT),
    errors.InvalidInputError: (422, VALIDATION),
    errors.IdempotencyKeyReusedError: (422, IDEMPOTENCY_KEY_REUSED),
    errors.MalformedInputError: (400, MALFORMED),
    errors.UnsupportedMediaTypeError: (415, BLANK),
    errors.ContentTooLargeError: (413, BLANK),
    errors.HeadersTooLargeError: (431, BLANK),
    errors.RequestTimeoutError: (408, BLANK),
    errors.AuthenticationError: (401, BLANK),
    errors.PermissionDeniedError: (403, BLANK),
    errors.RateLimitedError: (429, QUOTA_EXCEEDED),
    errors.StaleVersionError: (412, PRECONDITION_FAILED),
    errors.VersionRequiredError: (428, PRECONDITION_REQUIRED),
    errors.UnavailableError: (503, BLANK),
}


def error_response(error: errors.ItineraError) -> Response:
    """The problem+json answer to ``error``: the table's status and type, fields from its facts."""
    for cls in type(error).__mro__:
        if cls in ERROR_TABLE:
            status, problem_type = ERROR_TABLE[cls]
            break
    else:  # pragma: no cover - every ItineraError subclass derives from a row
        status, problem_type = 500, BLANK
    field_problems = None
    if isinstance(error, errors.InvalidInputError) and error.errors:
        field_problems = [
            FieldProblem(detail=e.detail, pointer=e.pointer, parameter=e.parameter)
            for e in error.errors
        ]
    violated_policies = None
    if isinstance(error, errors.RateLimitedError):
        violated_policies = [quota.name for quota in error.violated]
    return problem_response(
        status,
        error.detail,
        type=problem_type,
        errors=field_problems,
        headers=_fields(error),
        violated_policies=violated_policies,
    )


# The fields that name what a method's body may be: W3C LDP's Accept-Post
# (registered with IANA) and RFC 5789's Accept-Patch (§2.2: "SHOULD" on a 415).
_ACCEPT_FOR_METHOD = {"POST": "Accept-Post", "PATCH": "Accept-Patch"}


def _fields(error: errors.ItineraError) -> dict[str, str] | None:
    """The header fields that tell the caller what to do next: every one of them is set here."""
    match error:
        case errors.MethodNotAllowedError():
            return {"Allow": ", ".join(error.allowed)}
        case errors.AuthenticationError():
            reason = error.reason
            return {"WWW-Authenticate": "Bearer" if reason is None else f'Bearer error="{reason}"'}
        case errors.RateLimitedError():
            return {
                "RateLimit-Policy": error.quota_policy,
                "RateLimit": error.quota_state,
                "Retry-After": str(error.retry_after),
            }
        case errors.UnavailableError() | errors.IdempotencyInFlightError():
            return {"Retry-After": str(error.retry_after)}
        case errors.UnsupportedMediaTypeError():
            fields = {"Accept": error.accepted}
            if (for_method := _ACCEPT_FOR_METHOD.get(error.method or "")) is not None:
                fields[for_method] = error.accepted
            return fields
        case errors.ContentTooLargeError() | errors.RequestTimeoutError():
            # The rest of the body is not worth reading: close rather than drain it.
            return {"Connection": "close"}
    return None


# Failures of a dependency rather than of the request: the caller may retry.
UNAVAILABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    # The driver's own, from the hot paths: a lost connection, a server
    # shutting down or refusing connections, a statement cut off.
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a connection the server cut while it sat in the pool
    asyncpg.exceptions.OperatorInterventionError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # pool exhausted
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    TimeoutError,
    OSError,  # e.g. the database's socket is gone while it restarts
)


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, Exception) and sqlstate(exc) == QUERY_CANCELED:
        return True
    return isinstance(exc, UNAVAILABLE_EXCEPTIONS)


def unexpected_error_response(exc: BaseException) -> Response:
    """The answer to an exception nobody handled: 503 for a lost dependency, else 500."""
    if is_unavailable(exc):
        return error_response(errors.UnavailableError("a dependency is unavailable; retry"))
    return problem_response(500, "an unexpected error occurred")
