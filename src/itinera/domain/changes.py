"""What a PATCH body changes."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET


def changes_of(update: msgspec.Struct, **renames: str) -> dict[str, Any]:
    """The fields a PATCH body sets (absent fields are UNSET), keyed by column attribute."""
    return {
        renames.get(name, name): value
        for name in update.__struct_fields__
        if (value := getattr(update, name)) is not UNSET
    }
