"""Domain errors. They never mention HTTP; ``itinera.http`` maps them once.

Each carries the facts of what went wrong (a limit, the methods a path has,
seconds until a retry may succeed); how they are told to a client is decided
in one table and one function, in ``itinera.http``.

ItineraError
 ├── NotFoundError                 the thing (or the route) does not exist, or is another org's
 ├── MethodNotAllowedError         the path exists, without this method
 ├── DuplicateError                a unique rule would be broken
 ├── ConflictError                 the thing's state forbids the operation
 │    └── IdempotencyInFlightError     a request with the same key is still running
 ├── InvalidInputError             input that breaks the schema or a rule
 │    └── IdempotencyKeyReusedError    the key came with a different request before
 ├── MalformedInputError           input that cannot be read at all
 ├── UnsupportedMediaTypeError     a body in a media type that is not read
 ├── ContentTooLargeError          a body over the size limit
 ├── HeadersTooLargeError          headers over the size limit
 ├── RequestTimeoutError           a body that stopped arriving
 ├── AuthenticationError           no valid credentials
 ├── PermissionDeniedError         valid credentials, not allowed
 ├── RateLimitedError              a rate-limit bucket is empty
 ├── StaleVersionError             a conditional write saw another version
 ├── VersionRequiredError          a conditional write without a version
 └── UnavailableError              a dependency is down or saturated
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


class ItineraError(Exception):
    """Base of every error the service reports to its callers."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(ItineraError):
    pass


class MethodNotAllowedError(ItineraError):
    """``method`` is not one of the path's ``allowed`` methods."""

    def __init__(self, method: str, allowed: Sequence[str]) -> None:
        super().__init__(f"{method} is not allowed here")
        self.method = method
        self.allowed = tuple(allowed)


class DuplicateError(ItineraError):
    pass


class ConflictError(ItineraError):
    pass


class IdempotencyInFlightError(ConflictError):
    """Another request with the same Idempotency-Key holds its lock; retry in ``retry_after`` s."""

    def __init__(
        self,
        detail: str = "a request with this Idempotency-Key is in progress; retry shortly",
        *,
        retry_after: int = 1,
    ) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class FieldError:
    """Where the input went wrong: a JSON pointer into the body, or a parameter name."""

    detail: str
    pointer: str | None = None
    parameter: str | None = None


class InvalidInputError(ItineraError):
    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or []

    @classmethod
    def at(cls, pointer: str, detail: str) -> InvalidInputError:
        return cls(detail, [FieldError(detail=detail, pointer=pointer)])

    @classmethod
    def at_parameter(cls, parameter: str, detail: str) -> InvalidInputError:
        return cls(detail, [FieldError(detail=detail, parameter=parameter)])


class IdempotencyKeyReusedError(InvalidInputError):
    """The Idempotency-Key's record was stored for a request with another fingerprint."""

    def __init__(
        self, detail: str = "this Idempotency-Key was used for a different request"
    ) -> None:
        super().__init__(detail)


class MalformedInputError(ItineraError):
    pass


class UnsupportedMediaTypeError(ItineraError):
    """A body declared in another media type than ``accepted``, for an operation by ``method``."""

    def __init__(
        self,
        accepted: str = "application/json",
        *,
        method: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(detail or f"send the body as {accepted}")
        self.accepted = accepted
        self.method = method


class ContentTooLargeError(ItineraError):
    """A body larger than ``limit_bytes``; the rest of it will not be read."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"the request body is larger than {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


class HeadersTooLargeError(ItineraError):
    """Request headers larger, all together, than ``limit_bytes``."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"the request headers are larger than {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


class RequestTimeoutError(ItineraError):
    """A body that paused longer than ``seconds`` between two parts; the rest will not be read.

    Not a ``TimeoutError``: nothing of the service's timed out, the client did.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body paused for more than {seconds:g} s")
        self.seconds = seconds


# Why a bearer credential was refused, in RFC 6750's words (§3.1); None: none was sent.
CredentialProblem = Literal["invalid_request", "invalid_token"]


class AuthenticationError(ItineraError):
    """No valid credentials. ``reason``: what was wrong with those sent, if any were.

    ``invalid_request``: not readable as one bearer token (another scheme,
    several headers); ``invalid_token``: expired, not yet valid, or forged.
    """

    def __init__(self, detail: str, *, reason: CredentialProblem | None = None) -> None:
        super().__init__(detail)
        self.reason = reason


class PermissionDeniedError(ItineraError):
    pass


class Quota(Protocol):
    """A rate-limit policy as a refusal names it (``itinera.ratelimit.Policy`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def capacity(self) -> int: ...

    @property
    def window_seconds(self) -> int: ...


class RateLimitedError(ItineraError):
    """The request's rate-limit buckets refused it, and nothing was taken from any of them.

    ``violated``: the policies whose buckets were empty; ``retry_after``: whole
    seconds until every one of them holds a token again. ``quota_policy`` and
    ``quota_state``: the limiter's own description of all the request's
    buckets (policies; tokens left and seconds to the next), the same it
    gives on every request it allows.
    """

    def __init__(
        self,
        violated: Sequence[Quota],
        retry_after: int,
        *,
        quota_policy: str,
        quota_state: str,
    ) -> None:
        limits = " and ".join(
            f"the {q.name!r} limit of {q.capacity} requests per {q.window_seconds} s"
            for q in violated
        )
        verb = "is" if len(violated) == 1 else "are"
        super().__init__(f"{limits} {verb} used up; retry in {retry_after} s")
        self.violated = tuple(violated)
        self.retry_after = retry_after
        self.quota_policy = quota_policy
        self.quota_state = quota_state


class StaleVersionError(ItineraError):
    pass


class VersionRequiredError(ItineraError):
    pass


class UnavailableError(ItineraError):
    """A dependency is down, saturated or too slow; worth a retry in ``retry_after`` s."""

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
