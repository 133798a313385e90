"""The errors the service answers, one class per problem ``type``.

Every error is an RFC 9457 problem (``application/problem+json``); its
``type`` picks the class. ``about:blank`` means "what the status says", so
for it the status picks the class. An answer that is not a problem (from a
proxy, say) is read as ``about:blank`` with its status.

ItineraError                          status, type, title, detail, problem, headers
 ├── ValidationError                  /problems/validation (422); ``errors`` name the fields
 │    └── IdempotencyKeyReusedError   /problems/idempotency-key-reused (422)
 ├── MalformedRequestError            /problems/malformed (400)
 ├── NotFoundError                    /problems/not-found (404)
 ├── DuplicateError                   /problems/duplicate (409)
 ├── ConflictError                    /problems/conflict (409)
 │    └── IdempotencyInFlightError    /problems/idempotency-in-flight (409)     retried
 ├── PreconditionFailedError          /problems/precondition-failed (412)
 ├── PreconditionRequiredError        /problems/precondition-required (428)
 ├── RateLimitedError                 IANA's quota-exceeded (429)               retried
 ├── AuthenticationError              about:blank 401
 ├── PermissionDeniedError            about:blank 403
 ├── MethodNotAllowedError            about:blank 405
 ├── RequestTimeoutError              about:blank 408
 ├── ContentTooLargeError             about:blank 413
 ├── UnsupportedMediaTypeError        about:blank 415
 ├── HeadersTooLargeError             about:blank 431
 ├── ServerError                      about:blank 500 (and any other 5xx)
 └── ServiceUnavailableError          about:blank 503                           retried

"Retried": the client sends the same request again (with the same
``Idempotency-Key``) after ``Retry-After``, as its ``RetryPolicy`` allows;
the error is raised once the policy gives up.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import ClassVar

import httpx
import msgspec

from itinera_client.schemas.problems import FieldProblem, Problem

BLANK = "about:blank"
PROBLEM_PREFIX = "/problems/"
QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"

_problem_decoder = msgspec.json.Decoder(Problem)


class ItineraError(Exception):
    """An error answer of the service: an RFC 9457 problem.

    ``problem_type`` and ``status`` (on the class) are what the class stands
    for; ``type`` and ``status`` (on the instance) what was answered.
    """

    problem_type: ClassVar[str] = BLANK
    default_status: ClassVar[int] = 0
    # Whether the same request may succeed when sent again after Retry-After.
    retryable: ClassVar[bool] = False

    def __init__(self, problem: Problem, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{problem.status} {problem.title}: {problem.detail or problem.type}")
        self.problem = problem
        self.headers: Mapping[str, str] = headers or {}

    @property
    def status(self) -> int:
        return self.problem.status

    @property
    def type(self) -> str:
        return self.problem.type

    @property
    def title(self) -> str:
        return self.problem.title

    @property
    def detail(self) -> str | None:
        return self.problem.detail

    @property
    def errors(self) -> list[FieldProblem]:
        """Which fields or parameters were wrong (validation problems)."""
        return self.problem.errors or []

    @property
    def retry_after(self) -> float | None:
        """Seconds the service asked to wait before a retry (``Retry-After``), if it did."""
        return parse_retry_after(self.headers.get("retry-after"))


class ValidationError(ItineraError):
    problem_type = "/problems/validation"
    default_status = 422


class IdempotencyKeyReusedError(ValidationError):
    problem_type = "/problems/idempotency-key-reused"


class MalformedRequestError(ItineraError):
    problem_type = "/problems/malformed"
    default_status = 400


class NotFoundError(ItineraError):
    problem_type = "/problems/not-found"
    default_status = 404


class DuplicateError(ItineraError):
    problem_type = "/problems/duplicate"
    default_status = 409


class ConflictError(ItineraError):
    problem_type = "/problems/conflict"
    default_status = 409


class IdempotencyInFlightError(ConflictError):
    problem_type = "/problems/idempotency-in-flight"
    retryable = True


class PreconditionFailedError(ItineraError):
    problem_type = "/problems/precondition-failed"
    default_status = 412


class PreconditionRequiredError(ItineraError):
    problem_type = "/problems/precondition-required"
    default_status = 428


class RateLimitedError(ItineraError):
    problem_type = QUOTA_EXCEEDED
    default_status = 429
    retryable = True

    @property
    def violated_policies(self) -> list[str]:
        """The rate-limit buckets that were empty (``agent``, ``crud``, ``auth``, ...)."""
        return self.problem.violated_policies or []


class AuthenticationError(ItineraError):
    default_status = 401


class PermissionDeniedError(ItineraError):
    default_status = 403


class MethodNotAllowedError(ItineraError):
    default_status = 405


class RequestTimeoutError(ItineraError):
    default_status = 408


class ContentTooLargeError(ItineraError):
    default_status = 413


class UnsupportedMediaTypeError(ItineraError):
    default_status = 415


class HeadersTooLargeError(ItineraError):
    default_status = 431


class ServerError(ItineraError):
    default_status = 500


class ServiceUnavailableError(ItineraError):
    default_status = 503
    retryable = True


ERROR_CLASSES: tuple[type[ItineraError], ...] = (
    ValidationError,
    IdempotencyKeyReusedError,
    MalformedRequestError,
    NotFoundError,
    DuplicateError,
    ConflictError,
    IdempotencyInFlightError,
    PreconditionFailedError,
    PreconditionRequiredError,
    RateLimitedError,
    AuthenticationError,
    PermissionDeniedError,
    MethodNotAllowedError,
    RequestTimeoutError,
    ContentTooLargeError,
    UnsupportedMediaTypeError,
    HeadersTooLargeError,
    ServerError,
    ServiceUnavailableError,
)

_BY_TYPE = {cls.problem_type: cls for cls in ERROR_CLASSES if cls.problem_type != BLANK}
# About:blank, a problem type this client does not know, or no problem at all:
# the status alone decides.
_BY_STATUS: dict[int, type[ItineraError]] = {
    400: MalformedRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    408: RequestTimeoutError,
    409: ConflictError,
    412: PreconditionFailedError,
    413: ContentTooLargeError,
    415: UnsupportedMediaTypeError,
    422: ValidationError,
    428: PreconditionRequiredError,
    429: RateLimitedError,
    431: HeadersTooLargeError,
    500: ServerError,
    503: ServiceUnavailableError,
}


def error_class(status: int, problem_type: str) -> type[ItineraError]:
    """The class of an answer of ``status`` whose problem is of ``problem_type``."""
    if (by_type := _BY_TYPE.get(problem_type)) is not None:
        return by_type
    if (by_status := _BY_STATUS.get(status)) is not None:
        return by_status
    return ServerError if status >= 500 else ItineraError


def error_from_response(response: httpx.Response) -> ItineraError:
    """The error an answer of 400 or more stands for."""
    problem = _problem_of(response)
    return error_class(problem.status, problem.type)(problem, response.headers)


def _problem_of(response: httpx.Response) -> Problem:
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        try:
            problem = _problem_decoder.decode(response.content)
        except msgspec.DecodeError:
            pass
        else:
            if problem.status == response.status_code:
                return problem
    text = response.text[:500] if response.content else None
    return Problem(
        type=BLANK, title=response.reason_phrase, status=response.status_code, detail=text
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` field: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, math.ceil(seconds)) if math.isfinite(seconds) else None
