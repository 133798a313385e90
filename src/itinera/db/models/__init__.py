"""The ORM models own the schema. Import from here so every table is registered."""

from itinera.db.models.agent import AgentCheckpoint, AgentRun, AgentToolCall
from itinera.db.models.base import TENANT_TABLES, Base, new_id
from itinera.db.models.chat import ChatMessage, ChatSession
from itinera.db.models.destination import Destination, DiveSite
from itinera.db.models.idempotency import IdempotencyRecord
from itinera.db.models.itinerary import Itinerary
from itinera.db.models.knowledge import Embedding, KnowledgeItem
from itinera.db.models.lead import Lead
from itinera.db.models.org import Org
from itinera.db.models.user import AppUser, RefreshToken

__all__ = [
    "TENANT_TABLES",
    "AgentCheckpoint",
    "AgentRun",
    "AgentToolCall",
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
    "new_id",
]
