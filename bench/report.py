"""The results: one aligned text table and the same as JSON."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

P99_TARGET_MS = 100.0


@dataclass(frozen=True, slots=True)
class Row:
    """One measured run: HTTP through wrk, or SQL from an asyncpg pool."""

    name: str
    rate: float  # requests (or queries) per second
    p50_ms: float
    p99_ms: float
    non_2xx: int | None = None  # None: not an HTTP run
    socket_errors: int | None = None
    app_cpu_ms: float | None = None  # CPU per request of the process serving (or sending) it
    postgres_cpu_ms: float | None = None  # CPU per request of all PostgreSQL backends
    ceiling: str | None = None  # the name of the row this one is compared with
    ratio: float | None = None
    min_ratio: float | None = None
    p99_target_ms: float | None = None  # p99 < this
    max_p99_over_p50: float | None = None  # p99 <= this x p50
    recall_at_10: float | None = None
    # Round trips per request over the measured run, as the app (or, SQL rows, this
    # client) counted them; None: not counted. counted_requests: the requests it counted.
    db_round_trips: float | None = None
    redis_round_trips: float | None = None
    counted_requests: int | None = None
    # uvicorn workers of the app serving it (BENCH_WORKERS); None: not labelled.
    workers: int | None = None

    @property
    def target(self) -> str:
        parts = []
        if self.min_ratio is not None:
            parts.append(f"ratio >= {self.min_ratio:g}")
        if self.p99_target_ms is not None:
            parts.append(f"p99 < {self.p99_target_ms:g} ms")
        if self.max_p99_over_p50 is not None:
            parts.append(f"p99 <= {self.max_p99_over_p50:g} x p50")
        return ", ".join(parts)

    @property
    def met(self) -> bool | None:
        if self.min_ratio is None and self.p99_target_ms is None and self.max_p99_over_p50 is None:
            return None
        ratio_ok = self.min_ratio is None or (self.ratio or 0.0) >= self.min_ratio
        # NaN (nothing finished) compares false: not met.
        p99_ok = self.p99_target_ms is None or self.p99_ms < self.p99_target_ms
        spread_ok = self.max_p99_over_p50 is None or (
            self.p99_ms <= self.max_p99_over_p50 * self.p50_ms
        )
        clean = not self.non_2xx and not self.socket_errors
        return ratio_ok and p99_ok and spread_ok and clean


@dataclass(slots=True)
class Results:
    http: list[Row] = field(default_factory=list)
    search: list[Row] = field(default_factory=list)
    checkpointer: list[Row] = field(default_factory=list)  # LangGraph savers
    facts: dict[str, Any] = field(default_factory=dict)  # machine, settings, corpus, timings
    notes: list[str] = field(default_factory=list)  # printed under the tables


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def _number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _ratio(row: Row) -> str:
    return "-" if row.ratio is None else f"{row.ratio:.2f}"


def _met(row: Row) -> str:
    return {None: "", True: "yes", False: "NO"}[row.met]


def _table(header: list[str], lines: list[list[str]], left: int = 1) -> list[str]:
    """Columns before ``left`` are left-aligned, the others right-aligned."""
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        out = [
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [render(header), rule, *(render(cells) for cells in lines)]


def render(results: Results) -> str:
    http_lines = [
        [
            row.name,
            _number(row.rate),
            _number(row.p50_ms, 2),
            _number(row.p99_ms, 2),
            _count(row.non_2xx),
            _count(row.socket_errors),
            _number(row.app_cpu_ms, 2),
            _number(row.postgres_cpu_ms, 2),
            _number(row.db_round_trips),
            _number(row.redis_round_trips),
            _ratio(row),
            row.target or "-",
            _met(row),
        ]
        for row in results.http
    ]
    http_header = [
        "HTTP run",
        "req/s",
        "p50 ms",
        "p99 ms",
        "non-2xx",
        "sock err",
        "app cpu",
        "pg cpu",
        "db rt",
        "redis rt",
        "ratio",
        "target",
        "met",
    ]
    if any(row.workers is not None for row in results.http):
        http_header.insert(1, "workers")
        for cells, row in zip(http_lines, results.http, strict=True):
            cells.insert(1, _count(row.workers))
    http = _table(http_header, http_lines)
    search = _table(
        [
            "vector search (k = 10)",
            "q/s",
            "p50 ms",
            "p99 ms",
            "non-2xx",
            "app cpu",
            "pg cpu",
            "db rt",
            "redis rt",
            "recall@10",
            "ratio",
            "target",
            "met",
        ],
        [
            [
                row.name,
                _number(row.rate),
                _number(row.p50_ms, 2),
                _number(row.p99_ms, 2),
                _count(row.non_2xx),
                _number(row.app_cpu_ms, 2),
                _number(row.postgres_cpu_ms, 2),
                _number(row.db_round_trips),
                _number(row.redis_round_trips),
                "-" if row.recall_at_10 is None else f"{row.recall_at_10:.3f}",
                _ratio(row),
                row.target or "-",
                _met(row),
            ]
            for row in results.search
        ],
    )
    lines = [*http, ""]
    if results.search:
        lines += [*search, ""]
    if results.checkpointer:
        lines += [*_checkpointer_table(results.checkpointer), ""]
    lines += results.notes
    return "\n".join(lines)


def _checkpointer_table(rows: list[Row]) -> list[str]:
    return _table(
        [
            "LangGraph checkpointer",
            "per s",
            "p50 ms",
            "p99 ms",
            "errors",
            "app cpu",
            "pg cpu",
            "db rt",
            "redis rt",
            "ratio",
            "target",
            "met",
        ],
        [
            [
                row.name,
                _number(row.rate),
                _number(row.p50_ms, 2),
                _number(row.p99_ms, 2),
                _count(row.non_2xx),
                _number(row.app_cpu_ms, 2),
                _number(row.postgres_cpu_ms, 2),
                _number(row.db_round_trips),
                _number(row.redis_round_trips),
                _ratio(row),
                row.target or "-",
                _met(row),
            ]
            for row in rows
        ],
    )


def to_json(results: Results) -> bytes:
    def row(r: Row) -> dict[str, Any]:
        fields = asdict(r)
        if r.workers is None:  # only BENCH_WORKERS runs label their rows
            del fields["workers"]
        return fields | {"target": r.target, "met": r.met}

    rows = {
        "http": [row(r) for r in results.http],
        "search": [row(r) for r in results.search],
        "checkpointer": [row(r) for r in results.checkpointer],
    }
    clashes = sorted((rows.keys() | {"notes"}) & results.facts.keys())
    if clashes:  # a fact would silently replace the rows (or notes) of that name
        raise ValueError(f"facts named like the results' own keys: {clashes}")
    document = rows | results.facts | {"notes": results.notes}
    # NaN (a run where nothing finished) is not JSON: write null.
    return msgspec.json.format(msgspec.json.encode(_without_nan(document)), indent=2)


def _without_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(v) for v in value]
    return value
