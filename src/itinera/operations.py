"""Every operation of the API, area by area, in the order the OpenAPI document lists them."""

from __future__ import annotations

from itinera.domain.agent_runs import routes as agent_run_routes
from itinera.domain.api_keys import routes as api_key_routes
from itinera.domain.auth import routes as auth_routes
from itinera.domain.chat import routes as chat_routes
from itinera.domain.destinations import routes as destination_routes
from itinera.domain.itineraries import routes as itinerary_routes
from itinera.domain.knowledge import routes as knowledge_routes
from itinera.domain.leads import routes as lead_routes
from itinera.domain.threads import routes as thread_routes
from itinera.domain.users import routes as user_routes
from itinera.ops import health, problems
from itinera.routing import Operation


def api_operations() -> list[Operation]:
    """The service's operations, but for those serving the document itself."""
    return [
        *health.api.operations,
        *problems.api.operations,
        *auth_routes.api.operations,
        *user_routes.api.operations,
        *api_key_routes.api.operations,
        *destination_routes.api.operations,
        *knowledge_routes.api.operations,
        *agent_run_routes.api.operations,
        *itinerary_routes.api.operations,
        *chat_routes.api.operations,
        *lead_routes.api.operations,
        *thread_routes.api.operations,
    ]
