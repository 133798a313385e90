"""The one door into PostgreSQL: repositories on the request's unit of work.

A repository is built from the unit of work (``ctx.repository(ItineraryRepository)``)
and reaches the database only through five verbs — ``one``, ``all``, ``page``,
``scalar``, ``execute`` — each taking a :class:`~itinera.db.prepared.Prepared`
statement: an ordinary Core statement, compiled once, run on the driver with
binary codecs (vectors too). A database error the input caused leaves a verb
as a domain error (``DuplicateError``, ``InvalidInputError``, …), typed by
SQLSTATE; anything else propagates.

Tenant repositories cannot be built without the transaction's org, every
statement they run must filter by ``:org_id``, and they always supply it
themselves: a row of another org is simply not there ("not found", never
"forbidden"). Row-Level Security is the second, independent wall behind them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import asyncpg
from sqlalchemy import ColumnElement, Select, bindparam
from sqlalchemy.orm import InstrumentedAttribute

from itinera.db.errors import domain_error
from itinera.db.prepared import Prepared
from itinera.db.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class ErrorText:
    """What a broken rule means, in the words of the aggregate that broke it."""

    duplicate: str = "a resource with these values already exists"
    reference: str = "a referenced resource does not exist"
    check: str = "the values break a rule"


@contextmanager
def _translated(errors: ErrorText) -> Iterator[None]:
    try:
        yield
    except asyncpg.PostgresError as exc:
        error = domain_error(
            exc, duplicate=errors.duplicate, reference=errors.reference, check=errors.check
        )
        if error is None:
            raise
        raise error from exc


def paged(
    statement: Select[Any],
    key: ColumnElement[Any] | InstrumentedAttribute[Any],
    *,
    after: bool,
    newest_first: bool = True,
) -> Prepared:
    """A list's page statement, compiled once: in ``key`` order (newest first unless
    told otherwise), continuing past ``:after`` when ``after``, ``:limit`` rows (see
    :meth:`Repository.page`)."""
    if after:
        statement = statement.where(
            key < bindparam("after") if newest_first else key > bindparam("after")
        )
    order = key.desc() if newest_first else key.asc()
    return Prepared(statement.order_by(order).limit(bindparam("limit")))


class Repository:
    """Statements on the request's transaction, for data that belongs to no tenant (orgs)."""

    errors: ClassVar[ErrorText] = ErrorText()

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def arguments(self, statement: Prepared, params: dict[str, Any]) -> list[Any]:
        return statement.arguments(params)

    async def one(
        self, statement: Prepared, /, *, errors: ErrorText | None = None, **params: Any
    ) -> asyncpg.Record | None:
        with _translated(errors or self.errors):
            return await self.uow.fetchrow(statement.sql, self.arguments(statement, params))

    async def all(
        self, statement: Prepared, /, *, errors: ErrorText | None = None, **params: Any
    ) -> list[asyncpg.Record]:
        with _translated(errors or self.errors):
            return await self.uow.fetch(statement.sql, self.arguments(statement, params))

    async def scalar(
        self, statement: Prepared, /, *, errors: ErrorText | None = None, **params: Any
    ) -> Any:
        with _translated(errors or self.errors):
            return await self.uow.fetchval(statement.sql, self.arguments(statement, params))

    async def execute(
        self, statement: Prepared, /, *, errors: ErrorText | None = None, **params: Any
    ) -> int:
        """Run a statement for its effect; the number of rows it touched."""
        with _translated(errors or self.errors):
            status = await self.uow.execute(statement.sql, self.arguments(statement, params))
        count = status.rpartition(" ")[2]
        return int(count) if count.isdigit() else 0

    async def page(
        self, statement: Prepared, key: str, /, *, limit: int, **params: Any
    ) -> tuple[list[asyncpg.Record], Any]:
        """One page: ``statement`` is limited to ``:limit`` rows, and is given ``limit + 1``
        to learn whether more follow; returns the rows and the key to go on from (or None)."""
        rows = await self.all(statement, limit=limit + 1, **params)
        if len(rows) <= limit:
            return rows, None
        return rows[:limit], rows[limit - 1][key]


class TenantRepository(Repository):
    """Base of every repository of tenant data: every statement is for the transaction's org."""

    def __init__(self, uow: UnitOfWork) -> None:
        if not isinstance(uow.org_id, uuid.UUID):
            raise TypeError("a tenant repository needs the transaction's org")
        super().__init__(uow)
        self.org_id: uuid.UUID = uow.org_id

    def arguments(self, statement: Prepared, params: dict[str, Any]) -> list[Any]:
        if "org_id" not in statement.parameters:
            raise ValueError(f"a tenant statement must filter by :org_id: {statement.sql}")
        return statement.arguments({**params, "org_id": self.org_id})
