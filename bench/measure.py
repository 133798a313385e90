"""One measured wrk run: an unreported warm-up first, then the run itself, kept on disk."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.api import RoundTripMeter, RoundTrips
from bench.processes import CpuMeter
from bench.wrk import CONNECTIONS, THREADS, TIMEOUT_SECONDS, WrkResult, run_wrk


@dataclass(frozen=True, slots=True)
class Measured:
    wrk: WrkResult
    app_cpu_ms: float | None  # CPU per request: the app process's
    postgres_cpu_ms: float | None  # and all PostgreSQL backends'
    round_trips: RoundTrips | None = None  # as the app counted them over the measured run


@dataclass(frozen=True, slots=True)
class LoadPlan:
    wrk: str
    seconds: float
    warmup_seconds: float
    out_dir: Path

    def describe(self) -> str:
        return (
            f"wrk -t{THREADS} -c{CONNECTIONS} --timeout={TIMEOUT_SECONDS}s --latency:"
            f" {self.warmup_seconds:g} s warm-up"
            f" (not reported), then {self.seconds:g} s measured, per run"
        )

    def run(
        self,
        name: str,
        url: str,
        *,
        token: str | None = None,
        bodies: Path | None = None,
        fresh_keys: bool = False,
        cpu: CpuMeter | None = None,
        counted: RoundTripMeter | None = None,
    ) -> Measured:
        """GET ``url``, or POST the lines of ``bodies`` in turn (each with a new
        Idempotency-Key when ``fresh_keys``).

        ``counted`` is read right before the measured run and right after it (outside
        the CPU window: a read of /metrics costs the app some CPU). The app adds a
        request to its counters when the request ends, its round trips with it, so
        a warm-up request still finishing as the run starts moves both together.
        """
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        script = "post.lua" if bodies is not None else None

        def script_args(phase: str) -> tuple[str, ...]:
            if bodies is None:
                return ()
            # Unique per wrk process: its counters start again at 1.
            keys = (f"bench-{phase}-{uuid.uuid4().hex[:12]}",) if fresh_keys else ()
            return (str(bodies), *keys)

        print(f"  {name}: warm-up {self.warmup_seconds:g} s, run {self.seconds:g} s", flush=True)
        run_wrk(
            self.wrk,
            url,
            self.warmup_seconds,
            headers=headers,
            script=script,
            script_args=script_args("warmup"),
        )
        counts_before = counted.snapshot() if counted else None
        before = cpu.snapshot() if cpu else None
        result = run_wrk(
            self.wrk,
            url,
            self.seconds,
            headers=headers,
            script=script,
            script_args=script_args("run"),
        )
        cpu_after = cpu.snapshot() if cpu else None
        round_trips = None
        if counted is not None and counts_before is not None:
            round_trips = RoundTripMeter.per_request(counts_before, counted.snapshot())
        slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
        (self.out_dir / f"wrk-{slug}.txt").write_text(result.output)
        if before is None or cpu_after is None or not result.requests:
            return Measured(result, None, None, round_trips)
        app, postgres = CpuMeter.spent(before, cpu_after)
        per_request = 1000.0 / result.requests
        return Measured(result, app * per_request, postgres * per_request, round_trips)
