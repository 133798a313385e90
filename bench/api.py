"""The few calls the orchestrator makes to the service itself."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

ITINERARY = {
    "title": "Red Sea liveaboard",
    "start_date": "2026-03-01",
    "end_date": "2026-03-08",
    "status": "draft",
    "data": {
        "days": [
            {"date": "2026-03-01", "items": [{"kind": "flight", "title": "Fly to Hurghada"}]},
            {"date": "2026-03-02", "items": [{"kind": "dive", "title": "Abu Nuhas wrecks"}]},
        ]
    },
}


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    org_id: uuid.UUID
    user_id: uuid.UUID

    @property
    def authorization(self) -> str:
        return f"Bearer {self.token}"


def login(client: httpx.Client, org: str, email: str, password: str) -> Session:
    response = client.post(
        "/v1/auth/login", json={"org": org, "email": email, "password": password}
    )
    response.raise_for_status()
    token = response.json()["access_token"]
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    me.raise_for_status()
    body = me.json()
    return Session(token, uuid.UUID(body["org"]["id"]), uuid.UUID(body["user"]["id"]))


def create_itinerary(client: httpx.Client, session: Session) -> uuid.UUID:
    response = client.post(
        "/v1/itineraries",
        json=ITINERARY,
        headers={"Authorization": session.authorization, "Idempotency-Key": str(uuid.uuid4())},
    )
    response.raise_for_status()
    return uuid.UUID(response.json()["id"])


def search(client: httpx.Client, session: Session, vector: list[float], k: int) -> list[Any]:
    response = client.post(
        "/v1/knowledge/search",
        json={"query_vector": vector, "k": k},
        headers={"Authorization": session.authorization},
    )
    response.raise_for_status()
    results: list[Any] = response.json()["results"]
    return results


# One sample line of the text exposition format: a label value may hold braces
# (route="/v1/itineraries/{id}") and backslash escapes.
_SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>(?:[^"}\n]|"(?:[^"\\]|\\.)*")*)\})?'
    r" (?P<value>\S+)(?: \S+)?$",
    re.MULTILINE,
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_TYPE = re.compile(r"^# TYPE (\S+) \S+$", re.MULTILINE)
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


@dataclass(frozen=True, slots=True)
class Exposition:
    """One read of an app's /metrics: the families it declares, and its samples."""

    families: frozenset[str]
    samples: tuple[tuple[str, dict[str, str], float], ...]

    def declares(self, name: str) -> bool:
        # Counters are declared with or without their _total suffix, depending on the format.
        return name in self.families or name.removesuffix("_total") in self.families

    def samples_of(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(labels, value) for sample, labels, value in self.samples if sample == name]


def _unescape(value: str) -> str:
    return re.sub(r"\\[\\\"n]", lambda match: _ESCAPES[match[0]], value)


def parse_metrics(text: str) -> Exposition:
    samples = tuple(
        (
            match["name"],
            {k: _unescape(v) for k, v in _LABEL.findall(match["labels"] or "")},
            float(match["value"]),
        )
        for match in _SAMPLE.finditer(text)
    )
    return Exposition(frozenset(_TYPE.findall(text)), samples)


def scrape(base_url: str) -> Exposition:
    """``base_url``/metrics, read once."""
    response = httpx.get(f"{base_url}/metrics", timeout=30)
    response.raise_for_status()
    return parse_metrics(response.text)


def counters(client: httpx.Client, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one counter from the service's /metrics, with their labels."""
    response = client.get("/metrics")
    response.raise_for_status()
    return parse_metrics(response.text).samples_of(name)


@dataclass(frozen=True, slots=True)
class RouteCounts:
    """What an app counted for one route so far; None: it exposes no such counter."""

    requests: float
    database: float | None
    redis: float | None


@dataclass(frozen=True, slots=True)
class RoundTrips:
    """Round trips per request over a window, as the app counted them (None: not counted)."""

    requests: int  # the requests the app counted in the window
    database: float | None
    redis: float | None


@dataclass(frozen=True, slots=True)
class RoundTripMeter:
    """Reads the round trips an app counts itself, for one route, from its /metrics.

    The service exposes ``itinera_http_requests_total{method,route,status}`` and
    ``itinera_{db,redis}_round_trips_total{method,route}``, added to once per
    request when it ends (the unit of work and the rate limiter count them); the
    ceiling app the same under ``ceiling_``. A family the app does not declare
    is not counted (None); one it declares without a sample for the route is 0.
    """

    base_url: str
    method: str
    route: str
    prefix: str = "itinera"

    def snapshot(self) -> RouteCounts:
        exposition = scrape(self.base_url)
        requests = self._total(exposition, "http_requests")
        if requests is None:
            raise RuntimeError(f"{self.base_url}/metrics has no {self.prefix}_http_requests_total")
        return RouteCounts(
            requests,
            self._total(exposition, "db_round_trips"),
            self._total(exposition, "redis_round_trips"),
        )

    def _total(self, exposition: Exposition, counter: str) -> float | None:
        name = f"{self.prefix}_{counter}_total"
        if not exposition.declares(name):
            return None
        return sum(
            value
            for labels, value in exposition.samples_of(name)
            if labels.get("method") == self.method and labels.get("route") == self.route
        )

    @staticmethod
    def per_request(before: RouteCounts, after: RouteCounts) -> RoundTrips:
        requests = round(after.requests - before.requests)

        def per(first: float | None, last: float | None) -> float | None:
            if first is None or last is None or requests <= 0:
                return None
            return (last - first) / requests

        return RoundTrips(
            requests, per(before.database, after.database), per(before.redis, after.redis)
        )


def service_notes(client: httpx.Client) -> list[str]:
    """What the service itself counted over the whole run: refusals and limiter outages."""
    refused = [
        f"{labels['method']} {labels['route']} -> {labels['status']}: {value:.0f}"
        for labels, value in counters(client, "itinera_http_requests_total")
        if not labels["status"].startswith(("2", "3")) and value
    ]
    decisions: dict[str, float] = {}
    for labels, value in counters(client, "itinera_rate_limit_decisions_total"):
        decisions[labels["outcome"]] = decisions.get(labels["outcome"], 0.0) + value
    unavailable = decisions.get("unavailable", 0.0)
    total = sum(decisions.values())
    return [
        "service's own counters over the whole run (/metrics, warm-ups included): non-2xx by"
        f" route: {'; '.join(refused) or 'none'}; rate-limit checks that timed out or failed"
        f" (so failed open): {unavailable:.0f} of {total:.0f}"
    ]
