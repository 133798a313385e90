"""Core statements compiled once and run straight on the driver: the hot paths.

Building a statement and going through SQLAlchemy's execution machinery costs
a few hundred microseconds of CPU per statement; the service's hottest
requests (read and create an itinerary, the idempotency record, the opening
statement of every transaction) cannot afford that on two cores. A
``Prepared`` is an ordinary Core statement, checked against the models like
any other, compiled once for asyncpg; each call binds its parameters through
the same type processors SQLAlchemy would use and runs on the request's own
connection (asyncpg prepares it once per connection and caches it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import asyncpg
from pgvector.sqlalchemy import Vector
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from itinera.db.engine import DIALECT


class Prepared:
    def __init__(self, statement: ClauseElement) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=DIALECT))
        self.sql = str(compiled)
        if "__[POSTCOMPILE_" in self.sql:
            # An expanding IN (...) is rendered per call by SQLAlchemy's execution,
            # which a compiled-once statement never goes through.
            raise ValueError(f"use = any(:array) instead of IN (:values): {self.sql}")
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.parameters = frozenset(self._names)
        # Parameters without a value of their own must be given at each call.
        self._defaults = {
            name: value
            for name, value in compiled.params.items()
            if not compiled.binds[name].required
        }
        self._processors = [_bind_processor(compiled.binds[name].type) for name in self._names]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, processor in zip(self._names, self._processors, strict=True):
            if name in params:
                value = params[name]
            elif name in self._defaults:
                value = self._defaults[name]
            else:
                raise TypeError(f"missing parameter {name!r} for: {self.sql}")
            values.append(value if processor is None or value is None else processor(value))
        return values

    async def fetchrow(self, driver: asyncpg.Connection, **params: Any) -> asyncpg.Record | None:
        return await driver.fetchrow(self.sql, *self.arguments(params))

    async def fetch(self, driver: asyncpg.Connection, **params: Any) -> list[asyncpg.Record]:
        return list(await driver.fetch(self.sql, *self.arguments(params)))

    async def fetchval(self, driver: asyncpg.Connection, **params: Any) -> Any:
        return await driver.fetchval(self.sql, *self.arguments(params))


def _bind_processor(type_: TypeEngine[Any]) -> Any:
    # Vectors travel in pgvector's binary form (the codec registered on the
    # service's connections takes lists of floats): no text rendering here.
    if isinstance(type_, Vector):
        return None
    return type_.dialect_impl(DIALECT).bind_processor(DIALECT)
