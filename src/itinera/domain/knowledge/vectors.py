"""What makes a query or chunk vector usable for cosine similarity, and its stored form."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from itinera.errors import FieldError

# Whole-array operations: a Python loop over a 1536-dimension vector's components
# cost a search more CPU than the rest of its request.


def vector_problem(vector: list[float], dim: int) -> str | None:
    if len(vector) != dim:
        return f"expected {dim} dimensions, got {len(vector)}"
    components = np.asarray(vector, dtype=np.float64)
    if not np.isfinite(components).all():
        return "every component must be a finite number"
    if not components.any():
        return "an all-zero vector has no direction (cosine similarity is undefined)"
    return None


def vector_errors(vectors: list[tuple[str, list[float]]], dim: int) -> list[FieldError]:
    """Field errors for the ``(pointer, vector)`` pairs that are not usable."""
    return [
        FieldError(detail=problem, pointer=pointer)
        for pointer, vector in vectors
        if (problem := vector_problem(vector, dim)) is not None
    ]


def unit(vector: list[float]) -> NDArray[np.float64]:
    """The vector scaled to length 1 (computed in double precision, overflow-safe).

    Cosine similarity ignores length, and pgvector computes in single
    precision: a unit vector never overflows or vanishes there, whatever the
    magnitude the client sent. A usable vector (see ``vector_problem``) only.
    """
    # Scaled by the largest component first: the length of the original may
    # not be a finite double (two components near 1.8e308 already overflow).
    components = np.asarray(vector, dtype=np.float64)
    scaled = components / np.abs(components).max()
    unit_vector: NDArray[np.float64] = scaled / np.linalg.norm(scaled)
    return unit_vector
