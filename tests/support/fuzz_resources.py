"""Real resources of one tenant for the fuzzer to aim at, made through the API itself.

Generated path ids are random UUIDs, so without help every ``/{id}`` operation
would only ever answer 404. :class:`RealTargets` hands the fuzzer ids that
exist: one long-lived resource per kind (read and changed by GET, PATCH, PUT and
POST …/children), and a fresh throwaway one for each DELETE, so that a delete
never turns the other operations' cases into 404s.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from typing import Any

import requests

# The collection a path's `{id}` names, by the path's leading segments.
KIND_OF_PATH = (
    (re.compile(r"^/v1/users/\{id\}"), "user"),
    (re.compile(r"^/v1/destinations/\{id\}"), "destination"),
    (re.compile(r"^/v1/dive-sites/\{id\}"), "dive_site"),
    (re.compile(r"^/v1/knowledge/\{id\}"), "knowledge"),
    (re.compile(r"^/v1/agent-runs/\{id\}"), "agent_run"),
    (re.compile(r"^/v1/itineraries/\{id\}"), "itinerary"),
    (re.compile(r"^/v1/chat/sessions/\{id\}"), "chat_session"),
    (re.compile(r"^/v1/leads/\{id\}"), "lead"),
)

TIMEOUT = 10


def kind_of(path: str) -> str | None:
    """The kind of resource a path's ``{id}`` names, if the fuzzer knows how to make one."""
    for pattern, kind in KIND_OF_PATH:
        if pattern.match(path):
            return kind
    return None


class RealTargets:
    """Ids of real resources of the session's tenant, made on demand over HTTP."""

    def __init__(self, session: requests.Session, base_url: str, member_id: uuid.UUID) -> None:
        self.session = session
        self.base_url = base_url
        self.member_id = member_id
        self._kept: dict[str, str] = {}
        self._turns: Counter[str] = Counter()

    def takes_turn(self, label: str) -> bool:
        """Every other case of an operation aims at a real resource (deterministic)."""
        self._turns[label] += 1
        return self._turns[label] % 2 == 0

    def kept(self, kind: str) -> str:
        """The long-lived resource of this kind (made on first use)."""
        if kind not in self._kept:
            self._kept[kind] = self.fresh(kind)
        return self._kept[kind]

    def fresh(self, kind: str) -> str:
        """A new resource of this kind, for an operation that may delete it."""
        if kind == "user":
            # The member: PATCH may demote or disable it, never the admin whose token we use.
            return str(self.member_id)
        return self._create(*self._recipe(kind))

    def _recipe(self, kind: str) -> tuple[str, dict[str, Any]]:
        """Where to POST a new resource of this kind, and a valid body for it."""
        if kind == "destination":
            slug = f"fuzz-{uuid.uuid4().hex[:12]}"
            body = {"slug": slug, "name": "Dahab", "country": "EG", "lat": 28.5, "lon": 34.5}
            return "/v1/destinations", body
        if kind == "dive_site":
            return f"/v1/destinations/{self.kept('destination')}/dive-sites", dict(DIVE_SITE)
        if kind == "knowledge":
            # A fresh body each time: the same content hash would answer the stored item.
            body = {"source": "guide.md", "title": "Dahab", "body": f"Reefs {uuid.uuid4()}."}
            return "/v1/knowledge", body
        if kind == "agent_run":
            return "/v1/agent-runs", {"intent": "plan a dive trip"}
        if kind == "itinerary":
            dates = {"start_date": "2027-01-01", "end_date": "2027-01-08"}
            return "/v1/itineraries", {"title": "Red Sea", **dates}
        if kind == "chat_session":
            return "/v1/chat/sessions", {}
        if kind == "lead":
            # A fresh email each time: a repeat capture answers the lead already made.
            return "/v1/leads", {
                "email": f"fuzz-{uuid.uuid4().hex[:12]}@example.com",
                "source": "web",
            }
        raise ValueError(f"no recipe for {kind!r}")

    def etag(self, itinerary_id: str) -> str | None:
        """The itinerary's current ETag, or None once it is gone."""
        response = self._call("GET", f"/v1/itineraries/{itinerary_id}", expect=(200, 404))
        return response.headers.get("ETag") if response.status_code == 200 else None

    def _create(self, path: str, body: dict[str, Any]) -> str:
        response = self._call("POST", path, json=body, expect=(200, 201))
        return str(response.json()["id"])

    def _call(
        self, method: str, path: str, *, expect: tuple[int, ...], json: Any = None
    ) -> requests.Response:
        headers = {"Idempotency-Key": f"fuzz-setup-{uuid.uuid4()}"} if method != "GET" else {}
        response = self.session.request(
            method, self.base_url + path, json=json, headers=headers, timeout=TIMEOUT
        )
        if response.status_code not in expect:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        return response


DIVE_SITE = {
    "name": "Blue Hole",
    "min_depth_m": 5,
    "max_depth_m": 30,
    "difficulty": "advanced",
    "lat": 28.57,
    "lon": 34.54,
}
