"""Wall 1 of tenant isolation: repositories that filter every statement by the org."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from sqlalchemy import ColumnElement, Delete, Row, Select, Update, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from itinera.db.models.base import OrgScoped
from itinera.db.prepared import Prepared


class TenantRepository:
    """Base of every repository of tenant data.

    It cannot be built without the caller's org, and its statement builders
    add ``org_id = :org`` to everything they make, so a row of another org is
    simply not there ("not found", never "forbidden"). Row-Level Security is
    the second, independent wall behind this one.
    """

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        if not isinstance(org_id, uuid.UUID):
            raise TypeError("a tenant repository needs the caller's org id")
        self.session = session
        self.org_id = org_id

    def owned(self, model: type[OrgScoped]) -> ColumnElement[bool]:
        return model.org_id == self.org_id

    def select_from(self, model: type[OrgScoped], *columns: Any) -> Select[Any]:
        return select(*(columns or (model,))).where(self.owned(model))

    def update_of(self, model: type[OrgScoped]) -> Update:
        return update(model).where(self.owned(model))

    def delete_from(self, model: type[OrgScoped]) -> Delete:
        return delete(model).where(self.owned(model))

    async def fetch_page(
        self,
        statement: Select[Any],
        key: InstrumentedAttribute[Any],
        *,
        limit: int,
        after: Any,
        newest_first: bool = True,
    ) -> tuple[list[Row[Any]], Any]:
        """One page in key order; returns the rows and the key to continue after (or None)."""
        if after is not None:
            statement = statement.where(key < after if newest_first else key > after)
        statement = statement.order_by(key.desc() if newest_first else key.asc()).limit(limit + 1)
        rows = list((await self.session.execute(statement)).all())
        if len(rows) <= limit:
            return rows, None
        return rows[:limit], rows[limit - 1]._mapping[key.key]


class TenantStatements:
    """Base of repositories on the hot paths: compiled statements run on the driver.

    Like ``TenantRepository`` it cannot be built without the caller's org, and
    every statement it runs must take that org as its ``org_id`` parameter,
    which it always supplies itself.
    """

    def __init__(self, driver: asyncpg.Connection, org_id: uuid.UUID) -> None:
        if not isinstance(org_id, uuid.UUID):
            raise TypeError("a tenant repository needs the caller's org id")
        self.driver = driver
        self.org_id = org_id

    async def fetchrow(self, statement: Prepared, **params: Any) -> asyncpg.Record | None:
        return await statement.fetchrow(self.driver, **self._scoped(statement, params))

    async def fetch(self, statement: Prepared, **params: Any) -> list[asyncpg.Record]:
        return await statement.fetch(self.driver, **self._scoped(statement, params))

    async def fetchval(self, statement: Prepared, **params: Any) -> Any:
        return await statement.fetchval(self.driver, **self._scoped(statement, params))

    async def fetch_page(
        self, statement: Prepared, key: str, *, limit: int, **params: Any
    ) -> tuple[list[asyncpg.Record], Any]:
        """One page (the statement is limited to ``limit + 1`` rows) and the key to go on from."""
        rows = await self.fetch(statement, limit=limit + 1, **params)
        if len(rows) <= limit:
            return rows, None
        return rows[:limit], rows[limit - 1][key]

    def _scoped(self, statement: Prepared, params: dict[str, Any]) -> dict[str, Any]:
        if "org_id" not in statement.parameters:
            raise ValueError("a tenant statement must filter by :org_id")
        return {**params, "org_id": self.org_id}
