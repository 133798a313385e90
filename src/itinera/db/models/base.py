"""Declarative base, shared column types and the tenant mixin."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import uuid_utils.compat
from sqlalchemy import Date, DateTime, ForeignKey, MetaData, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint names are part of the schema: explicit conventions keep them
# stable between the models, the migrations and `alembic check`.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

Json = dict[str, Any]


def new_id() -> uuid.UUID:
    """A UUIDv7, made here so it is known before the insert."""
    return uuid_utils.compat.uuid7()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
        date: Date(),
        Json: JSONB(),
    }


def created_at_column() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


def updated_at_column() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


class OrgScoped:
    """Every tenant table: ``org_id`` first in the primary key and in every key."""

    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("org.id", ondelete="CASCADE"), primary_key=True, sort_order=-2
    )


class TenantMixin(OrgScoped):
    """A tenant table whose rows have their own UUIDv7 id: primary key ``(org_id, id)``."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, sort_order=-1)
