"""The /docs page: Swagger UI, served with its files by the service itself.

Swagger UI comes from the ``swagger-ui-bundle-v2`` distribution, which ships
npm's ``swagger-ui-dist`` files unchanged. The service answers only the files
the page loads, named in ``SWAGGER_UI_FILES``: a request picks an entry of that
table, never a path on disk, so nothing else of the package, or of the
filesystem, can be reached. The page links each file with a fingerprint of its
bytes (``?v=``), so a browser may keep it for a year; text files are sent
gzipped to clients that accept it (the script is 1.5 MB, 0.4 MB gzipped).

The page is a small HTML file whose one inline script loads the bundle and
starts it. Its Content-Security-Policy allows that script by its SHA-256 hash
and, through ``'strict-dynamic'``, the script it adds; nothing else runs (no
other inline code, no eval, no script named by a URL alone). Styles and images
come from the service (and the style sheet's ``data:`` icons), and the network
reaches the service only (``connect-src 'self'``: the document and
try-it-out). Everything is read and prepared once, on first use, in a worker
thread: gzipping the bundle takes some 40 ms.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import anyio.to_thread
from starlette.responses import Response

from itinera.errors import NotFoundError

# What the page loads, from the package's own directory, with its media type.
SWAGGER_UI_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
ASSET_PATH = "docs/assets/"  # relative to /docs, as the page links them
FINGERPRINT_LENGTH = 16  # hex digits of SHA-256: ample against accidental reuse
# A fingerprinted URL names exactly these bytes; any other is revalidated.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

_PLACEHOLDER = re.compile(r"\{asset:([\w.-]+)\}")
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


@dataclass(frozen=True)
class Asset:
    media_type: str
    body: bytes
    gzipped: bytes | None  # None where gzip would not pay (images)
    fingerprint: str

    def response(
        self, fingerprint: str | None, accept_encoding: str | None, if_none_match: str | None
    ) -> Response:
        use_gzip = self.gzipped is not None and accepts_gzip(accept_encoding)
        # One entity tag per representation: the gzipped bytes are another entity.
        etag = f'"{self.fingerprint}{"-gzip" if use_gzip else ""}"'
        headers = {
            "ETag": etag,
            "Cache-Control": IMMUTABLE if fingerprint == self.fingerprint else REVALIDATE,
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "same-origin",
        }
        if self.gzipped is not None:
            headers["Vary"] = "Accept-Encoding"
        if if_none_match is not None and _matches(if_none_match, etag):
            return Response(status_code=304, headers=headers)
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
        body = self.gzipped if use_gzip and self.gzipped is not None else self.body
        return Response(body, media_type=self.media_type, headers=headers)


@dataclass(frozen=True)
class DocsSite:
    """The page, the headers it is served with, and the files it loads."""

    html: bytes
    headers: dict[str, str]
    assets: dict[str, Asset]

    def page_response(self) -> Response:
        return Response(self.html, media_type="text/html", headers=self.headers)

    def asset_response(
        self,
        name: str,
        fingerprint: str | None,
        accept_encoding: str | None,
        if_none_match: str | None,
    ) -> Response:
        asset = self.assets.get(name)
        if asset is None:
            raise NotFoundError(f"the docs page loads no file named {name!r}")
        return asset.response(fingerprint, accept_encoding, if_none_match)


async def load() -> DocsSite:
    """The site, prepared on first use in a worker thread (cached after)."""
    return await anyio.to_thread.run_sync(site)


@functools.cache
def site() -> DocsSite:
    directory = swagger_ui_directory()
    assets = {
        name: _asset(directory.joinpath(name).read_bytes(), media_type)
        for name, media_type in SWAGGER_UI_FILES.items()
    }
    template = files("itinera.ops").joinpath("static", "docs.html").read_text(encoding="utf-8")

    def link(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"{ASSET_PATH}{name}?v={assets[name].fingerprint}"

    html = _PLACEHOLDER.sub(link, template).encode()
    return DocsSite(html, _page_headers(html), assets)


def swagger_ui_directory() -> Traversable:
    """The package's ``vendor/swagger-ui-<version>`` directory (the only one it ships)."""
    found = [
        entry
        for entry in files("swagger_ui_bundle").joinpath("vendor").iterdir()
        if entry.is_dir() and entry.name.startswith("swagger-ui-")
    ]
    if len(found) != 1:
        raise RuntimeError(f"expected one Swagger UI in swagger_ui_bundle, found {len(found)}")
    return found[0]


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether ``Accept-Encoding`` takes gzip: named, or as ``*``, with q above 0."""
    weights: dict[str, str] = {}
    for coding in (accept_encoding or "").split(","):
        name, _, parameters = coding.partition(";")
        weights.setdefault(name.strip().lower(), parameters.strip().lower().removeprefix("q="))
    q = weights.get("gzip", weights.get("x-gzip", weights.get("*")))
    return q is not None and not _is_zero(q)


def _is_zero(q: str) -> bool:
    try:
        return float(q or "1") == 0
    except ValueError:
        return False


def _matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match compares weakly (RFC 9110 §13.1.2)."""
    if if_none_match.strip() == "*":
        return True
    return etag in {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}


def _asset(body: bytes, media_type: str) -> Asset:
    fingerprint = hashlib.sha256(body).hexdigest()[:FINGERPRINT_LENGTH]
    # mtime=0: the same bytes whenever the process starts, like the entity tag says.
    gzipped = gzip.compress(body, mtime=0) if media_type.startswith("text/") else None
    return Asset(media_type, body, gzipped, fingerprint)


def _page_headers(html: bytes) -> dict[str, str]:
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    policy = "; ".join(
        (
            "default-src 'none'",
            f"script-src {hashes} 'strict-dynamic'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": REVALIDATE,
    }
