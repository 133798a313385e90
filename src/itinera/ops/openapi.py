from __future__ import annotations

from itinera.routing import Api

api = Api(tag="operations")
