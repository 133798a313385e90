"""Values written into SQL text, for the messages sent by the simple query protocol.

The opening and the closing message of a transaction carry several statements
in one round trip, and that protocol has no parameters: every value there is
inlined by these functions, each of which can only produce a well-formed
literal, whatever its input.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Inlined:
    """A statement with its values inlined; ``shown`` is the same with ``$name`` for each
    value that came from a request, so that a trace span never holds a request's text."""

    sql: str
    shown: str


def uuid_literal(value: uuid.UUID) -> str:
    """A UUID as a quoted literal, once it is known to be a UUID object."""
    if not isinstance(value, uuid.UUID):
        raise TypeError(f"expected a UUID, got {type(value).__name__}")
    return f"'{value}'"


def bytea_literal(value: bytes) -> str:
    """Bytes as a bytea literal in hex form (an escape string: read the same whatever
    ``standard_conforming_strings`` says)."""
    return f"E'\\\\x{bytes(value).hex()}'::bytea"


def dollar_quoted(text: str) -> str:
    """``text`` as a dollar-quoted literal, under a tag that does not occur in it.

    Nothing in it is read as an escape, whatever ``standard_conforming_strings``
    says; for text without NUL (PostgreSQL refuses it in any literal).
    """
    if "\x00" in text:
        raise ValueError("a literal cannot hold NUL")
    tag, n = "$k$", 0
    # The literal ends where the tag first occurs after the opening one: that
    # must be the closing tag itself, not a match straddling the text's end.
    while (text + tag).find(tag) != len(text):
        n += 1
        tag = f"$k{n}$"
    return f"{tag}{text}{tag}"
