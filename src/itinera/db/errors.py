"""Driver errors translated into domain errors, typed by SQLSTATE."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError

from itinera.errors import DuplicateError, InvalidInputError

UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
CHECK_VIOLATION = "23514"


def sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


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
            raise InvalidInputError(reference) from exc
        if code == CHECK_VIOLATION:
            raise InvalidInputError(check) from exc
        raise
