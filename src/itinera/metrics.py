"""Prometheus metrics, one registry per app (tests build many apps in one process)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.pool import Pool, QueuePool

from itinera.round_trips import RoundTrips

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "itinera_http_requests_total",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "itinera_http_request_duration_seconds",
            "HTTP request latency by route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.database_round_trips = Counter(
            "itinera_db_round_trips_total",
            "Round trips to PostgreSQL made by requests, by route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.redis_round_trips = Counter(
            "itinera_redis_round_trips_total",
            "Round trips to Redis made by requests, by route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.rate_limits = Counter(
            "itinera_rate_limit_decisions_total",
            "Rate-limit decisions by bucket and outcome (allowed, denied, unavailable).",
            ["bucket", "outcome"],
            registry=self.registry,
        )
        self.idempotency = Counter(
            "itinera_idempotency_outcomes_total",
            "Idempotent requests by outcome (new, replayed, in_flight, reused).",
            ["outcome"],
            registry=self.registry,
        )
        self.swept_rows = Counter(
            "itinera_retention_rows_deleted_total",
            "Rows deleted by retention sweeps, by policy.",
            ["policy"],
            registry=self.registry,
        )
        self.sweep_duration = Histogram(
            "itinera_retention_sweep_duration_seconds",
            "Duration of one retention sweep, by policy.",
            ["policy"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.sweep_failures = Counter(
            "itinera_retention_sweep_failures_total",
            "Retention sweeps that failed, by policy.",
            ["policy"],
            registry=self.registry,
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
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.request_duration.labels(*labels).observe(seconds)
        if round_trips.database:
            self.database_round_trips.labels(method, route).inc(round_trips.database)
        if round_trips.redis:
            self.redis_round_trips.labels(method, route).inc(round_trips.redis)

    def track_pools(self, pools: Mapping[str, Pool]) -> None:
        self.registry.register(PoolCollector(pools))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class PoolCollector(Collector):
    """Connection-pool usage, read at scrape time."""

    def __init__(self, pools: Mapping[str, Pool]) -> None:
        self.pools = dict(pools)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        connections = GaugeMetricFamily(
            "itinera_db_pool_connections",
            "Database connections by pool (app, owner) and state.",
            labels=["pool", "state"],
        )
        for name, pool in self.pools.items():
            if isinstance(pool, QueuePool):
                connections.add_metric([name, "checked_out"], pool.checkedout())
                connections.add_metric([name, "idle"], pool.checkedin())
                connections.add_metric([name, "size"], pool.size())
                connections.add_metric([name, "overflow"], max(0, pool.overflow()))
        yield connections
