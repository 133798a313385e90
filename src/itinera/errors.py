"""Domain errors. They never mention HTTP; ``itinera.http`` maps them once.

ItineraError
 ├── NotFoundError            the thing does not exist (or is another org's)
 ├── DuplicateError           a unique rule would be broken
 ├── ConflictError            the thing's state forbids the operation
 ├── InvalidInputError        input that breaks the schema or a rule
 ├── MalformedInputError      input that cannot be read at all
 ├── AuthenticationError      no valid credentials
 ├── PermissionDeniedError    valid credentials, not allowed
 ├── StaleVersionError        a conditional write saw another version
 ├── VersionRequiredError     a conditional write without a version
 └── UnavailableError         a dependency is down or saturated
"""

from __future__ import annotations

from dataclasses import dataclass


class ItineraError(Exception):
    """Base of every error the service reports to its callers."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(ItineraError):
    pass


class DuplicateError(ItineraError):
    pass


class ConflictError(ItineraError):
    pass


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


class MalformedInputError(ItineraError):
    pass


class AuthenticationError(ItineraError):
    pass


class PermissionDeniedError(ItineraError):
    pass


class StaleVersionError(ItineraError):
    pass


class VersionRequiredError(ItineraError):
    pass


class UnavailableError(ItineraError):
    pass
