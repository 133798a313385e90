"""langchain-tests' own suite for vector stores, sync and async, against a live service:
each test on a fresh org, so the store starts empty whatever ran before."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests

from itinera_client import ItineraClient, SyncItineraClient
from itinera_client.langchain import ItineraVectorStore
from tests.support.live_service import LiveService


class TestItineraVectorStore(VectorStoreIntegrationTests):
    """A store over clients of the caller's: the sync face for the sync tests, the async
    face for the async ones."""

    @pytest.fixture
    async def vectorstore(  # type: ignore[override]
        self, langchain_service: LiveService, api_key: str
    ) -> AsyncIterator[ItineraVectorStore]:
        url = langchain_service.base_url
        async with ItineraClient(url, api_key=api_key) as client:
            with SyncItineraClient(url, api_key=api_key) as sync_client:
                yield ItineraVectorStore(
                    self.get_embeddings(), client=client, sync_client=sync_client
                )


class TestItineraVectorStoreFromApiKey(VectorStoreIntegrationTests):
    """A store that makes its clients itself from a URL and an API key."""

    @pytest.fixture
    async def vectorstore(  # type: ignore[override]
        self, langchain_service: LiveService, api_key: str
    ) -> AsyncIterator[ItineraVectorStore]:
        embedding = self.get_embeddings()
        base_url = langchain_service.base_url
        async with ItineraVectorStore(embedding, base_url=base_url, api_key=api_key) as store:
            yield store
