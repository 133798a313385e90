"""RFC 9457 problem details: the body of every error the service answers."""

from __future__ import annotations

import msgspec


class FieldProblem(msgspec.Struct, kw_only=True, omit_defaults=True):
    detail: str
    pointer: str | None = None
    parameter: str | None = None


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem detail."""

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = None
    violated_policies: list[str] | None = msgspec.field(default=None, name="violated-policies")
