"""Round trips a request made to PostgreSQL and Redis, counted where they are made."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RoundTrips:
    """Put in the scope by the outermost layer; the unit of work and the limiter add to it."""

    database: int = 0
    redis: int = 0
