"""What both faces start from: timeouts, the User-Agent, where a path goes."""

from __future__ import annotations

import importlib.metadata

import httpx

# Searches and writes answer in well under a second; the service cuts a
# statement at 5 s. Connecting should be quick or not at all.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)

try:
    VERSION = importlib.metadata.version("itinera-client")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
    VERSION = "0"

USER_AGENT = f"itinera-client/{VERSION} python-httpx/{httpx.__version__}"


def request_url(base_url: str, path: str) -> str:
    """``path`` (from the API's root, ``/v1/...``) under ``base_url``, which may have a path
    of its own (a service behind a prefix)."""
    if not path.startswith("/"):
        raise ValueError(f"a path starts with '/': {path!r}")
    return base_url.rstrip("/") + path
