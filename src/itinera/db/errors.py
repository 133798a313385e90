"""Driver errors translated into domain errors, typed by SQLSTATE."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError

from itinera.errors import DuplicateError, FieldError, InvalidInputError

UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
CHECK_VIOLATION = "23514"


def sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def constraint_name(exc: DBAPIError) -> str | None:
    driver_error = getattr(exc.orig, "__cause__", None)
    return getattr(driver_error, "constraint_name", None)


def _referenced_field(exc: DBAPIError) -> list[FieldError]:
    """Foreign keys are named ``fk_<table>_org_id_<column>`` (naming convention)."""
    name = constraint_name(exc) or ""
    _, sep, column = name.partition("_org_id_")
    if not sep:
        return []
    return [FieldError(detail="no such resource in this org", pointer=f"/{column}")]


@contextmanager
def translate_integrity_errors(
    *,
    duplicate: str = "a resource with these values already exists",
    reference: str = "a referenced resource does not exist",
    check: str = "the values break a rule",
) -> Iterator[None]:
    try:
        yield
    except DBAPIError as exc:
        code = sqlstate(exc)
        if code == UNIQUE_VIOLATION:
            raise DuplicateError(duplicate) from exc
        if code == FOREIGN_KEY_VIOLATION:
            raise InvalidInputError(reference, _referenced_field(exc)) from exc
        if code == CHECK_VIOLATION:
            raise InvalidInputError(check) from exc
        raise
