"""The real app behind a real uvicorn server, in a thread with its own event loop.

For clients that block (``requests``, as schemathesis uses) and so cannot share the
test session's event loop: the server's lifespan opens its own engine and Redis
client in its own loop, and nothing crosses between the two loops but TCP.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from itinera.app import create_app
from itinera.settings import Settings

STARTUP_SECONDS = 30
SHUTDOWN_SECONDS = 30


@contextmanager
def serving(settings: Settings, *, http: str = "h11") -> Iterator[str]:
    """Serve ``create_app(settings)`` on a loopback port; yields its base URL.

    ``http`` picks uvicorn's protocol implementation: ``h11`` or ``httptools``
    (what ``itinera serve`` runs with uvicorn[standard]).
    """
    config = uvicorn.Config(
        create_app(settings),
        lifespan="on",
        loop="asyncio",
        http=http,
        ws="none",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    # Bound here, before the thread starts, so the port is ours and known without a race.
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every small response waits for a delayed ACK (~40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # uvicorn skips its signal handlers outside the main thread, which is what we want.
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fuzz-uvicorn", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server stopped during startup (see its log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start within {STARTUP_SECONDS} s")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_SECONDS)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"the server did not stop within {SHUTDOWN_SECONDS} s")
