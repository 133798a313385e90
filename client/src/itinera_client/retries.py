"""When the client sends a request again, and how long it waits first."""

from __future__ import annotations

from dataclasses import dataclass

from itinera_client.errors import ItineraError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of answers that say "not now": 409 ``idempotency-in-flight``, 429 and 503.

    Such a request changed nothing, and it carries the same ``Idempotency-Key``
    each time, so sending it again is safe. Any other error is raised at once.

    ``attempts``: tries per call, the first included (1: never retry).
    ``max_wait``: the longest ``Retry-After`` honoured, in seconds; an answer
    asking for longer is raised rather than waited for.
    ``default_wait``: the wait when an answer names no ``Retry-After``.
    """

    attempts: int = 5
    max_wait: float = 60.0
    default_wait: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.max_wait < 0 or self.default_wait < 0:
            raise ValueError("waits cannot be negative")

    def wait_before_retry(self, error: ItineraError, attempt: int) -> float | None:
        """Seconds to wait before trying again after ``error`` on try ``attempt`` (from 1);
        None: raise it."""
        if not error.retryable or attempt >= self.attempts:
            return None
        wait = error.retry_after
        if wait is None:
            wait = self.default_wait
        return wait if wait <= self.max_wait else None


NO_RETRIES = RetryPolicy(attempts=1)
