"""What makes a query or chunk vector usable for cosine similarity, and its stored form."""

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


def unit(vector: list[float]) -> list[float]:
    """The vector scaled to length 1 (computed in double precision, overflow-safe).

    Cosine similarity ignores length, and pgvector computes in single
    precision: a unit vector never overflows or vanishes there, whatever the
    magnitude the client sent. A usable vector (see ``vector_problem``) only.
    """
    # Scaled by the largest component first: the length of the original may
    # not be a finite double (two components near 1.8e308 already overflow).
    largest = max(abs(x) for x in vector)
    scaled = [x / largest for x in vector]
    length = math.hypot(*scaled)
    return [x / length for x in scaled]
