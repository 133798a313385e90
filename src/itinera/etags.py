"""Strong entity tags from resource versions, and the conditional request headers."""

from __future__ import annotations

import re

from itinera.errors import StaleVersionError, VersionRequiredError

_STRONG = re.compile(r'"(\d{1,18})"')


def etag(version: int) -> str:
    return f'"{version}"'


def _versions(header: str) -> frozenset[int] | None:
    """The versions a list of entity tags names; None when it holds a weak or foreign tag."""
    versions = set()
    for tag in header.split(","):
        match = _STRONG.fullmatch(tag.strip())
        if match is None:
            return None
        versions.add(int(match.group(1)))
    return frozenset(versions)


def versions_required(if_match: str | None) -> frozenset[int]:
    """PUT and PATCH: ``If-Match`` must name the version being replaced (``*`` does not)."""
    if if_match is None or if_match.strip() in ("", "*"):
        raise VersionRequiredError("send If-Match with the ETag of the version you are changing")
    versions = _versions(if_match)
    if versions is None:
        raise StaleVersionError("If-Match needs a strong ETag of this resource")
    return versions


def versions_allowed(if_match: str | None) -> frozenset[int] | None:
    """DELETE: ``If-Match`` is honoured when sent; None means unconditional."""
    if if_match is None or if_match.strip() == "*":
        return None
    versions = _versions(if_match)
    if versions is None:
        raise StaleVersionError("If-Match needs a strong ETag of this resource")
    return versions


def none_match(if_none_match: str | None, version: int) -> bool:
    """GET: True when the client already has this version (weak comparison, RFC 9110)."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag(version) in tags
