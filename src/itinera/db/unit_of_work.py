"""The unit of work: one AsyncSession and one transaction per request, for one tenant."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from itinera.db.models import AppUser
from itinera.errors import AuthenticationError

TENANT_SETTING = "itinera.org_id"


class UnitOfWork:
    """Owns the request's session; repositories flush, only this commits.

    The transaction opens with a single statement that applies the tenant
    setting, and any other transaction-local settings, with
    ``set_config(name, value, true)``: they vanish at commit or rollback, so
    nothing leaks to the next user of the pooled connection. Callers may fold
    more columns into that first statement (``begin(extra...)``).

    For an authenticated request the same statement checks that the caller
    still exists and is enabled, so a token outliving its user gets nowhere.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        org_id: uuid.UUID | None = None,
        *,
        user_id: uuid.UUID | None = None,
    ) -> None:
        self._sessions = sessions
        self._org_id = org_id
        self._user_id = user_id
        self._session: AsyncSession | None = None
        self._finished = False

    @property
    def org_id(self) -> uuid.UUID | None:
        return self._org_id

    @property
    def in_transaction(self) -> bool:
        return self._session is not None and not self._finished

    async def set_tenant(self, org_id: uuid.UUID) -> None:
        """Choose the tenant of a public route's transaction (login and refresh learn it late).

        Folded into the first statement when the transaction has not begun.
        """
        if self._org_id is not None and self._org_id != org_id:
            raise RuntimeError("a transaction serves one tenant")
        self._org_id = org_id
        if self._session is not None:
            await self.apply_settings({TENANT_SETTING: str(org_id)})

    async def begin(
        self, *extra: ColumnElement[Any], settings: Mapping[str, str] | None = None
    ) -> tuple[Any, ...]:
        """Open the transaction with one statement: the settings, then ``extra`` columns.

        Returns the values of the ``extra`` columns.
        """
        if self._session is not None:
            raise RuntimeError("the unit of work has already begun")
        if self._finished:
            raise RuntimeError("the unit of work is finished")
        self._session = self._sessions()
        values = dict(settings or {})
        if self._org_id is not None:
            values[TENANT_SETTING] = str(self._org_id)
        # Order matters: PostgreSQL evaluates the select list left to right and
        # runs an uncorrelated subquery (an InitPlan) only when its value is
        # first needed, so the user check below already sees the tenant
        # setting that Row-Level Security filters on.
        columns: list[ColumnElement[Any]] = [
            func.set_config(name, value, true()) for name, value in values.items()
        ]
        if self._user_id is not None:
            columns.append(self._active_user(self._user_id))
        columns.extend(extra)
        if not columns:
            return ()
        row = (await self._session.execute(select(*columns))).one()
        if self._user_id is not None and not row[len(values)]:
            raise AuthenticationError("the user no longer exists or is disabled")
        return tuple(row[len(columns) - len(extra) :])

    def _active_user(self, user_id: uuid.UUID) -> ColumnElement[bool]:
        return exists().where(
            AppUser.org_id == self._org_id, AppUser.id == user_id, AppUser.disabled.is_(False)
        )

    async def session(self) -> AsyncSession:
        if self._finished:
            raise RuntimeError("the unit of work is finished")
        if self._session is None:
            await self.begin()
        assert self._session is not None
        return self._session

    async def apply_settings(self, settings: Mapping[str, str]) -> None:
        """Set transaction-local settings, folded into the first statement when possible."""
        if self._session is None:
            await self.begin(settings=settings)
            return
        columns = [func.set_config(name, value, true()) for name, value in settings.items()]
        await self._session.execute(select(*columns))

    async def savepoint(self, name: str) -> None:
        # Plain SQL rather than session.begin_nested(): a released savepoint
        # needs no RELEASE round trip, COMMIT ends it.
        session = await self.session()
        await session.execute(text(f"SAVEPOINT {name}"))

    async def rollback_to_savepoint(self, name: str) -> None:
        session = await self.session()
        await session.execute(text(f"ROLLBACK TO SAVEPOINT {name}"))

    async def commit(self) -> None:
        if self._session is not None and not self._finished:
            self._finished = True
            await self._session.commit()

    async def rollback(self) -> None:
        if self._session is not None and not self._finished:
            self._finished = True
            await self._session.rollback()

    async def close(self) -> None:
        self._finished = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
