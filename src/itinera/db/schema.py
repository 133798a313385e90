"""What schema this build expects, and what the database has."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from itinera.settings import Settings


class SchemaStatus(enum.Enum):
    OK = "ok"
    AHEAD = "ahead"  # a newer, additive migration was rolled out first: still serviceable
    BEHIND = "behind"
    MISSING = "missing"
    WRONG_DIMENSION = "wrong-dimension"

    @property
    def serviceable(self) -> bool:
        return self in (SchemaStatus.OK, SchemaStatus.AHEAD)


@dataclass(frozen=True, slots=True)
class ExpectedSchema:
    head: str
    known_revisions: frozenset[str]
    embedding_dim: int


@dataclass(frozen=True, slots=True)
class ObservedSchema:
    revision: str | None
    embedding_dim: int | None


def migrations_dir(settings: Settings) -> Path:
    """The migrations shipped with this build: packaged in a wheel, or the checkout's."""
    if settings.migrations_dir:
        return Path(settings.migrations_dir)
    packaged = Path(__file__).resolve().parent.parent / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir(settings)))
    config.attributes["settings"] = settings
    return config


def expected_schema(settings: Settings) -> ExpectedSchema:
    scripts = ScriptDirectory.from_config(alembic_config(settings))
    heads = scripts.get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads; expected one")
    known = frozenset(script.revision for script in scripts.walk_revisions())
    return ExpectedSchema(heads[0], known, settings.embedding_dim)


OBSERVE = text(
    "SELECT "
    "(SELECT version_num FROM alembic_version LIMIT 1) AS revision, "
    "(SELECT atttypmod FROM pg_attribute "
    " WHERE attrelid = to_regclass('embedding') AND attname = 'embedding') AS dim"
)


async def observe_schema(conn: AsyncConnection) -> ObservedSchema:
    exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
    if not exists:
        return ObservedSchema(None, None)
    row = (await conn.execute(OBSERVE)).one()
    return ObservedSchema(row.revision, row.dim)


def compare(expected: ExpectedSchema, observed: ObservedSchema) -> SchemaStatus:
    if observed.revision is None:
        return SchemaStatus.MISSING
    if observed.embedding_dim is not None and observed.embedding_dim != expected.embedding_dim:
        return SchemaStatus.WRONG_DIMENSION
    if observed.revision == expected.head:
        return SchemaStatus.OK
    if observed.revision in expected.known_revisions:
        return SchemaStatus.BEHIND
    return SchemaStatus.AHEAD
