"""The /docs page: one static HTML file that fetches /openapi.json and renders it.

Everything the page needs is inline, so it works offline and loads nothing from
a third party. Its Content-Security-Policy allows exactly the inline script and
style it ships, by their SHA-256 hashes (a static page needs no per-request
nonce, and nothing else inline may run), and network access only to the
service itself (``connect-src 'self'`` for the fetch).
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files

HTML: bytes = files("itinera.ops").joinpath("static", "docs.html").read_bytes()


def _hashes(tag: str) -> str:
    blocks = re.findall(rb"<%s>(.*?)</%s>" % (tag.encode(), tag.encode()), HTML, re.DOTALL)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(block).digest()).decode()}'" for block in blocks
    )


CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        f"script-src {_hashes('script')}",
        f"style-src {_hashes('style')}",
        "connect-src 'self'",
        "img-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
