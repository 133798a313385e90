"""Driver errors translated into domain errors, typed by SQLSTATE."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError

from itinera.errors import (
    DuplicateError,
    FieldError,
    InvalidInputError,
    ItineraError,
    UnavailableError,
)

UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
CHECK_VIOLATION = "23514"
# Values PostgreSQL cannot store as given: class 22 (data exception: NUL in
# text, numbers out of range, ...) and 54 (a program limit, e.g. a tsvector
# past 1 MB). Both are about the input, not the service.
DATA_EXCEPTION_CLASS = "22"
PROGRAM_LIMIT_CLASS = "54"
# statement_timeout cut the statement off: the request asked for more work
# than one transaction may take, and the connection is fine afterwards.
QUERY_CANCELED = "57014"


# A database error as SQLAlchemy raises it, or as the driver does (hot paths).
DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, asyncpg.PostgresError)


def _driver_error(exc: Exception) -> object:
    if isinstance(exc, DBAPIError):
        return getattr(exc.orig, "__cause__", None)
    return exc


def sqlstate(exc: Exception) -> str | None:
    return getattr(_driver_error(exc), "sqlstate", None)


def constraint_name(exc: Exception) -> str | None:
    return getattr(_driver_error(exc), "constraint_name", None)


def _referenced_field(exc: Exception) -> list[FieldError]:
    """Foreign keys are named ``fk_<table>_org_id_<column>`` (naming convention)."""
    name = constraint_name(exc) or ""
    _, sep, column = name.partition("_org_id_")
    if not sep:
        return []
    return [FieldError(detail="no such resource in this org", pointer=f"/{column}")]


def domain_error(
    exc: Exception,
    *,
    duplicate: str = "a resource with these values already exists",
    reference: str = "a referenced resource does not exist",
    check: str = "the values break a rule",
) -> ItineraError | None:
    """The domain error a request-caused database error stands for; None for any other."""
    code = sqlstate(exc) or ""
    if code == UNIQUE_VIOLATION:
        return DuplicateError(duplicate)
    if code == FOREIGN_KEY_VIOLATION:
        return InvalidInputError(reference, _referenced_field(exc))
    if code == CHECK_VIOLATION:
        return InvalidInputError(check)
    if code.startswith(DATA_EXCEPTION_CLASS):
        return InvalidInputError("a value cannot be stored (e.g. a NUL character in text)")
    if code.startswith(PROGRAM_LIMIT_CLASS):
        return InvalidInputError("a value is too large to store or index")
    if code == QUERY_CANCELED:
        return UnavailableError("the request took longer than the database allows; retry later")
    return None
