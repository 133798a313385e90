"""Prometheus metrics, per app in one process and added up across ``itinera serve``'s workers.

One process (tests build many apps in one; ``itinera serve`` with one worker):
every app has its own registry, and connection-pool usage is read from the
pools when /metrics is scraped.

Several workers (``ITINERA_WORKERS`` > 1): each worker is a process of its
own, so a registry in memory would answer /metrics with the counts of
whichever worker the scrape reached. ``itinera serve`` therefore makes a fresh
directory and names it in ``PROMETHEUS_MULTIPROC_DIR`` before uvicorn starts
the workers; prometheus_client sees the variable when a worker imports it and
writes that worker's values to files of its own there (its "multiprocess
mode"). /metrics, answered by any worker, reads every worker's files:
counters and histograms are summed over all workers, those that exited
included (a count never goes back); pool gauges keep one series per live
worker, labelled ``pid`` (``liveall``), since a pool is one worker's and its
saturation is per worker. A worker that shuts down removes its gauges
(``RetireProcessAtShutdown``); one killed outright leaves them until
``serve`` stops and deletes the directory.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.pool import Pool, QueuePool
from starlette.types import ASGIApp, Receive, Scope, Send

from itinera.round_trips import RoundTrips

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# The variable prometheus_client reads when it is imported: set by ``itinera serve``
# for its workers, never read by our code.
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

POOL_CONNECTIONS = "itinera_db_pool_connections"
POOL_CONNECTIONS_HELP = "Database connections by pool (app, owner) and state."


def values_are_shared() -> bool:
    """Whether this process writes its metric values to files for other processes to read.

    prometheus_client decides once, when it is imported, from the environment;
    what /metrics reads must follow that decision, so it is asked rather than
    guessed from our own settings.
    """
    return values.ValueClass is not values.MutexValue


def retire_process() -> None:
    """Drop this worker's live gauges (its pools are gone); its counts stay in the sum."""
    if values_are_shared():
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class RetireProcessAtShutdown:
    """Retire the worker's gauges once the app's lifespan has shut down its pools.

    Not at exit: after a graceful shutdown uvicorn raises the stopping signal
    again, and a worker dies of it without running exit handlers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            retire_process()


class Metrics:
    def __init__(self) -> None:
        self.shared = values_are_shared()
        self.registry = CollectorRegistry(auto_describe=not self.shared)
        # Shared values live in the files, not in this registry: registering the
        # metrics here too would report this worker's share twice.
        own = None if self.shared else self.registry
        if self.shared:
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        self.requests = Counter(
            "itinera_http_requests_total",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=own,
        )
        self.request_duration = Histogram(
            "itinera_http_request_duration_seconds",
            "HTTP request latency by route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.database_round_trips = Counter(
            "itinera_db_round_trips_total",
            "Round trips to PostgreSQL made by requests, by route template.",
            ["method", "route"],
            registry=own,
        )
        self.redis_round_trips = Counter(
            "itinera_redis_round_trips_total",
            "Round trips to Redis made by requests, by route template.",
            ["method", "route"],
            registry=own,
        )
        self.rate_limits = Counter(
            "itinera_rate_limit_decisions_total",
            "Rate-limit decisions by bucket and outcome (allowed, denied, unavailable).",
            ["bucket", "outcome"],
            registry=own,
        )
        self.idempotency = Counter(
            "itinera_idempotency_outcomes_total",
            "Idempotent requests by outcome (new, replayed, in_flight, reused).",
            ["outcome"],
            registry=own,
        )
        self.swept_rows = Counter(
            "itinera_retention_rows_deleted_total",
            "Rows deleted by retention sweeps, by policy.",
            ["policy"],
            registry=own,
        )
        self.sweep_duration = Histogram(
            "itinera_retention_sweep_duration_seconds",
            "Duration of one retention sweep, by policy.",
            ["policy"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
            registry=own,
        )
        self._request_series: dict[tuple[str, str, int], tuple[Any, Any, Any, Any]] = {}
        self.sweep_failures = Counter(
            "itinera_retention_sweep_failures_total",
            "Retention sweeps that failed, by policy.",
            ["policy"],
            registry=own,
        )

    def swept(self, policy: str, rows: int, seconds: float) -> None:
        self.swept_rows.labels(policy).inc(rows)
        self.sweep_duration.labels(policy).observe(seconds)

    def sweep_failed(self, policy: str) -> None:
        self.sweep_failures.labels(policy).inc()

    def rate_limit_decision(self, bucket: str, outcome: str) -> None:
        self.rate_limits.labels(bucket, outcome).inc()

    def idempotency_outcome(self, outcome: str) -> None:
        self.idempotency.labels(outcome).inc()

    def observe_request(
        self, method: str, route: str, status: int, seconds: float, round_trips: RoundTrips
    ) -> None:
        series = self._request_series.get((method, route, status))
        if series is None:
            series = self._request_series[(method, route, status)] = self._series_of(
                method, route, status
            )
        requests, duration, database, redis = series
        requests.inc()
        duration.observe(seconds)
        if round_trips.database:
            database.inc(round_trips.database)
        if round_trips.redis:
            redis.inc(round_trips.redis)

    def _series_of(self, method: str, route: str, status: int) -> tuple[Any, Any, Any, Any]:
        """A request's four labelled series, looked up once per (method, route, status)."""
        return (
            self.requests.labels(method, route, str(status)),
            self.request_duration.labels(method, route, str(status)),
            self.database_round_trips.labels(method, route),
            self.redis_round_trips.labels(method, route),
        )

    def track_pools(self, pools: Mapping[str, PoolUsage]) -> None:
        if not self.shared:
            self.registry.register(PoolCollector(pools))
            return
        # A scrape reaches one worker and cannot look into another's pools:
        # each worker publishes its own as they change.
        gauge = Gauge(
            POOL_CONNECTIONS,
            POOL_CONNECTIONS_HELP,
            ["pool", "state"],
            multiprocess_mode="liveall",
            registry=None,
        )
        for name, pool in pools.items():
            PublishedPool(gauge, name, pool)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class PoolUsage(Protocol):
    """A pool that tells its usage, and when it changes."""

    def usage(self) -> dict[str, int]:
        """Connections by state: checked_out, idle, size, overflow."""
        ...

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every checkout and checkin."""
        ...


class QueuePoolUsage:
    """A SQLAlchemy pool's usage (the owner's engine)."""

    def __init__(self, pool: Pool) -> None:
        assert isinstance(pool, QueuePool)
        self.pool = pool

    def usage(self) -> dict[str, int]:
        return {
            "checked_out": self.pool.checkedout(),
            "idle": self.pool.checkedin(),
            "size": self.pool.size(),
            "overflow": max(0, self.pool.overflow()),
        }

    def on_change(self, listener: Callable[[], None]) -> None:
        def after_checkin(*_: Any) -> None:
            # SQLAlchemy announces a checkin before the connection is back in the
            # queue (or closed, past the pool's size): tell once it is.
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # a connection collected outside the event loop
                listener()
            else:
                loop.call_soon(listener)

        event.listen(self.pool, "checkout", lambda *_: listener())
        event.listen(self.pool, "checkin", after_checkin)


class PoolCollector(Collector):
    """Connection-pool usage, read at scrape time (one process)."""

    def __init__(self, pools: Mapping[str, PoolUsage]) -> None:
        self.pools = dict(pools)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        connections = GaugeMetricFamily(
            POOL_CONNECTIONS, POOL_CONNECTIONS_HELP, labels=["pool", "state"]
        )
        for name, pool in self.pools.items():
            for state, count in pool.usage().items():
                connections.add_metric([name, state], count)
        yield connections


class PublishedPool:
    """One worker's pool usage, written to its gauge files whenever a connection
    is checked out or returned (several workers)."""

    def __init__(self, gauge: Gauge, name: str, pool: PoolUsage) -> None:
        self.gauge = gauge
        self.name = name
        self.pool = pool
        pool.on_change(self.publish)
        self.publish()

    def publish(self) -> None:
        for state, count in self.pool.usage().items():
            self.gauge.labels(self.name, state).set(count)
