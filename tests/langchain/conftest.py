"""Services for the LangChain adapter: each on a database of its own whose embedding
dimension is the one its tests embed with, and a fresh org with an API key for every
test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from langchain_tests.integration_tests.vectorstores import EMBEDDING_SIZE

from tests.langchain.services import dimensioned_service
from tests.support.live_service import LiveService
from tests.support.servers import PostgresServer


@pytest.fixture(scope="session")
async def langchain_service(postgres: PostgresServer, redis_url: str) -> AsyncIterator[LiveService]:
    """A service whose vectors have the dimension of langchain-tests' fake embeddings (6)."""
    async with dimensioned_service(postgres, redis_url, EMBEDDING_SIZE) as service:
        yield service


@pytest.fixture
async def api_key(langchain_service: LiveService) -> str:
    """An API key of the admin of a fresh org: every test starts from an empty corpus."""
    return langchain_service.with_org(await langchain_service.new_org()).mint_api_key()
