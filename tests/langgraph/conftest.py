"""Savers for the LangGraph adapter's tests: each test on a fresh org of the session's live
service, through an API key, so that what one test saves (a list across the org's
threads included) is nobody else's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from itinera_client.langgraph import ItineraSaver
from tests.support.live_service import LiveService


@pytest.fixture
def api_key(live_tenant: LiveService) -> str:
    """An API key of the admin of a fresh org."""
    return live_tenant.mint_api_key(name="langgraph")


@pytest.fixture
async def saver(live_tenant: LiveService, api_key: str) -> AsyncIterator[ItineraSaver]:
    """Both faces, made by the saver from the service's URL and the key."""
    async with ItineraSaver(base_url=live_tenant.base_url, api_key=api_key) as saver:
        yield saver
