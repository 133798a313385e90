"""The ORM models own the schema. Import from here so every table is registered."""

from sqlalchemy import Table

from itinera.db.models.agent import AgentCheckpoint, AgentRun, AgentToolCall
from itinera.db.models.api_key import ApiKey
from itinera.db.models.base import Base, OrgScoped, new_id
from itinera.db.models.chat import ChatMessage, ChatSession
from itinera.db.models.destination import Destination, DiveSite
from itinera.db.models.idempotency import IdempotencyRecord
from itinera.db.models.itinerary import Itinerary
from itinera.db.models.knowledge import Embedding, KnowledgeItem
from itinera.db.models.lead import Lead
from itinera.db.models.org import Org
from itinera.db.models.thread import Thread, ThreadBlob, ThreadCheckpoint, ThreadWrite
from itinera.db.models.user import AppUser, RefreshToken

# Derived, never listed: every mapped table of the OrgScoped mixin is a tenant
# table (Row-Level Security, the tenancy tests), so a new one cannot be forgotten.
TENANT_TABLES: tuple[str, ...] = tuple(
    sorted(
        table.name
        for mapper in Base.registry.mappers
        if issubclass(mapper.class_, OrgScoped) and isinstance(table := mapper.local_table, Table)
    )
)

__all__ = [
    "TENANT_TABLES",
    "AgentCheckpoint",
    "AgentRun",
    "AgentToolCall",
    "ApiKey",
    "AppUser",
    "Base",
    "ChatMessage",
    "ChatSession",
    "Destination",
    "DiveSite",
    "Embedding",
    "IdempotencyRecord",
    "Itinerary",
    "KnowledgeItem",
    "Lead",
    "Org",
    "RefreshToken",
    "Thread",
    "ThreadBlob",
    "ThreadCheckpoint",
    "ThreadWrite",
    "new_id",
]
