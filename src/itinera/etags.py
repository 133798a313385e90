"""Strong entity tags from resource versions, and the conditional request headers."""

from __future__ import annotations

import re

from itinera.errors import VersionRequiredError

# The tags this service issues: a version in canonical decimal. Past 18 digits
# a number is past any version, and int() raises on text past 4300 digits.
_STRONG = re.compile(r'"(0|[1-9][0-9]{0,17})"')


def etag(version: int) -> str:
    return f'"{version}"'


def _versions(header: str) -> frozenset[int]:
    """The versions the strong tags of an ``If-Match`` list name.

    Weak tags (If-Match compares strongly), foreign tags and numbers too long
    to be a version name none; a list that names none matches no version, so
    the write it guards answers 412 (or 404 if the resource is gone).
    """
    return frozenset(
        int(match.group(1))
        for tag in header.split(",")
        if (match := _STRONG.fullmatch(tag.strip())) is not None
    )


def versions_required(if_match: str | None) -> frozenset[int]:
    """PUT and PATCH: ``If-Match`` must name the version being replaced (``*`` does not)."""
    if if_match is None or if_match.strip() in ("", "*"):
        raise VersionRequiredError("send If-Match with the ETag of the version you are changing")
    return _versions(if_match)


def versions_allowed(if_match: str | None) -> frozenset[int] | None:
    """DELETE: ``If-Match`` is honoured when sent; None means unconditional."""
    if if_match is None or if_match.strip() == "*":
        return None
    return _versions(if_match)


def none_match(if_none_match: str | None, version: int) -> bool:
    """GET: True when the client already has this version (weak comparison, RFC 9110)."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag(version) in tags
