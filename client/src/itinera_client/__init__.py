"""The Itinera API from Python.

``ItineraClient`` (async) and ``SyncItineraClient`` (blocking) offer the same
typed methods, area by area (``client.knowledge``, ``client.itineraries``,
...), on the wire types the service itself speaks (``itinera_client.schemas``).
Errors are ``itinera_client.errors`` classes, one per problem type.
"""

from itinera_client.client import ItineraClient
from itinera_client.errors import ItineraError
from itinera_client.retries import NO_RETRIES, RetryPolicy
from itinera_client.sync import SyncItineraClient

__all__ = ["NO_RETRIES", "ItineraClient", "ItineraError", "RetryPolicy", "SyncItineraClient"]
