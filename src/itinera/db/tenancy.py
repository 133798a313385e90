"""Wall 1 of tenant isolation: repositories that filter every statement by the org."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Delete, Select, Update, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from itinera.db.models.base import OrgScoped


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
