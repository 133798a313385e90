"""A page of a list, and the query that asks for one.

``next_cursor`` is opaque: pass it back as ``cursor`` to the list that issued
it (the service binds it to that route and the caller's org); ``None`` means
this was the last page.
"""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import msgspec
from msgspec import Meta

T = TypeVar("T")

Limit = Annotated[int, Meta(ge=1, le=200, description="page size (1-200)")]


class PageQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    limit: Limit = 50
    cursor: Annotated[str, Meta(max_length=200)] | None = None


class Page(msgspec.Struct, Generic[T], kw_only=True):
    items: list[T]
    next_cursor: str | None
