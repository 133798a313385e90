"""The client faces a framework adapter runs on, and the closing of those it made."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from itinera_client.client import ItineraClient
from itinera_client.sync import SyncItineraClient


class AdapterClients:
    """An ``ItineraClient`` for the ``a*`` methods and/or a ``SyncItineraClient``
    for the plain ones — or both made from ``base_url`` and ``api_key``.

    Clients passed in stay the caller's to close; the ones made here are
    closed by ``close()`` (the sync one) and ``aclose()`` (both), or on leaving
    ``with`` / ``async with``.
    """

    client: ItineraClient | None
    sync_client: SyncItineraClient | None

    def _use_clients(
        self,
        client: ItineraClient | None,
        sync_client: SyncItineraClient | None,
        base_url: str | None,
        api_key: str | None,
    ) -> None:
        self._owned_client: ItineraClient | None = None
        self._owned_sync_client: SyncItineraClient | None = None
        if base_url is not None:
            if client is not None or sync_client is not None:
                raise TypeError("give clients, or base_url and api_key to make them: not both")
            client = self._owned_client = ItineraClient(base_url, api_key=api_key)
            sync_client = self._owned_sync_client = SyncItineraClient(base_url, api_key=api_key)
        elif client is None and sync_client is None:
            raise TypeError("give client and/or sync_client, or base_url and api_key")
        self.client = client
        self.sync_client = sync_client

    def close(self) -> None:
        """Close the sync client made here (``aclose`` closes both)."""
        if self._owned_sync_client is not None:
            self._owned_sync_client.close()

    async def aclose(self) -> None:
        """Close the clients made here."""
        self.close()
        if self._owned_client is not None:
            await self._owned_client.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
