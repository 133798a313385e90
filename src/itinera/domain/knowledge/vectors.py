"""What makes a query or chunk vector usable for cosine similarity."""

from __future__ import annotations

import math

from itinera.errors import FieldError


def vector_problem(vector: list[float], dim: int) -> str | None:
    if len(vector) != dim:
        return f"expected {dim} dimensions, got {len(vector)}"
    if not all(math.isfinite(x) for x in vector):
        return "every component must be a finite number"
    if not any(vector):
        return "an all-zero vector has no direction (cosine similarity is undefined)"
    return None


def vector_errors(vectors: list[tuple[str, list[float]]], dim: int) -> list[FieldError]:
    """Field errors for the ``(pointer, vector)`` pairs that are not usable."""
    return [
        FieldError(detail=problem, pointer=pointer)
        for pointer, vector in vectors
        if (problem := vector_problem(vector, dim)) is not None
    ]
