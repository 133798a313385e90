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


_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def counters(client: httpx.Client, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one counter from the service's /metrics, with their labels."""
    response = client.get("/metrics")
    response.raise_for_status()
    return [
        (dict(_LABEL.findall(match["labels"])), float(match["value"]))
        for match in _SAMPLE.finditer(response.text)
        if match["name"] == name
    ]


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
