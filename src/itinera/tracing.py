"""OpenTelemetry traces: a server span per request, a client span per SQL or Redis round trip.

Off unless the settings name an exporter (``Settings.tracing``), and off costs
nothing: ``create_app`` adds no tracing layer, the lifespan makes no tracer,
and no request calls into OpenTelemetry — this module imports it only in the
code that runs when tracing is on. The unit of work and the limiter ask
``current_tracer()`` (a context variable, None outside a traced request) once
per transaction or decision, and wrap their calls only when it answers.

Each app has its own ``TracerProvider``, made and shut down (flushed) by its
lifespan and handed around explicitly; nothing is set globally (no global
provider or propagator), so one process can run several apps, as tests do.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from itinera.settings import Settings, SettingsError

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Span

P = ParamSpec("P")
T = TypeVar("T")

EXPORTERS = ("otlp", "console")
# W3C Trace Context: the caller's trace, and the vendors' state that goes with it.
PROPAGATED_HEADERS = frozenset({b"traceparent", b"tracestate"})
# A SQL span is named by its statement's first keyword (SELECT, INSERT, BEGIN, COMMIT).
_FIRST_KEYWORD = re.compile(r"\s*([A-Za-z]+)")

_request_tracer: ContextVar[Tracer | None] = ContextVar("itinera.tracer", default=None)


def current_tracer() -> Tracer | None:
    """The tracer of the request this task serves; None when tracing is off or outside one."""
    return _request_tracer.get()


class Tracer:
    """Starts the service's spans on its own provider."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = provider
        self._tracer = provider.get_tracer("itinera")
        self._propagator = TraceContextTextMapPropagator()

    def start_request(
        self, method: str, path: str, scheme: str, headers: Iterable[tuple[bytes, bytes]]
    ) -> RequestSpan:
        """The server span of a request: a child of its ``traceparent`` when it carries one.

        Current (for the SQL and Redis spans) until ``RequestSpan.end``.
        """
        from opentelemetry import context, trace

        carrier: dict[str, list[str]] = {}
        for name, value in headers:
            if name in PROPAGATED_HEADERS:
                carrier.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
        parent: Context | None = self._propagator.extract(carrier) if carrier else None
        # Named by the method alone until the router has matched a route template.
        span = self._tracer.start_span(
            method,
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path, "url.scheme": scheme},
        )
        # A request the sampler left out has no SQL or Redis spans either (a
        # parent-based sampler would drop them): its round trips skip tracing.
        return RequestSpan(
            span,
            method,
            context.attach(trace.set_span_in_context(span)),
            _request_tracer.set(self if span.is_recording() else None),
        )

    def sql(self, statement: str) -> ClientSpan:
        """A client span around one round trip to PostgreSQL: the statement's text, never
        its parameters."""
        keyword = _FIRST_KEYWORD.match(statement)
        return self._client_span(
            keyword[1].upper() if keyword else "postgresql",
            {
                # db.system.name is the stable convention; db.system the one
                # many backends still read.
                "db.system.name": "postgresql",
                "db.system": "postgresql",
                "db.query.text": statement,
            },
        )

    def redis(self, command: str) -> ClientSpan:
        """A client span around one Redis command."""
        return self._client_span(
            command,
            {"db.system.name": "redis", "db.system": "redis", "db.operation.name": command},
        )

    def _client_span(self, name: str, attributes: dict[str, str]) -> ClientSpan:
        from opentelemetry.trace import SpanKind

        # Not made current: nothing is traced beneath a round trip, and
        # attaching a context per statement would cost a third of the span.
        return ClientSpan(
            self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        )

    def redis_command(
        self, command: str, call: Callable[P, Awaitable[T]]
    ) -> Callable[P, Awaitable[T]]:
        """``call`` (a Redis client's method) with a span around each use."""

        async def traced(*args: P.args, **kwargs: P.kwargs) -> T:
            with self.redis(command):
                return await call(*args, **kwargs)

        return traced

    def shutdown(self) -> None:
        """Export what is still queued and stop (blocks on the exporter: call it off the loop)."""
        self._provider.shutdown()


class ClientSpan:
    """A round trip's span, ended as its ``with`` block is left.

    No exception event: a driver's message may quote a parameter's value
    (asyncpg: "invalid input for query argument $1: 'hunter2'"). The error's
    type and SQLSTATE go on the span; the details are in the error log line,
    which carries the trace id.
    """

    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: TracebackType | None
    ) -> None:
        if error is not None:
            _mark_failed(self._span, error)
        self._span.end()


class RequestSpan:
    """A request's server span, made current by ``Tracer.start_request``."""

    def __init__(
        self,
        span: Span,
        method: str,
        context_token: Token[Context],
        tracer_token: Token[Tracer | None],
    ) -> None:
        self._span = span
        self._method = method
        self._context_token = context_token
        self._tracer_token = tracer_token

    @property
    def trace_id(self) -> str:
        """As W3C ``traceparent`` writes it: 32 lower-case hex digits."""
        return format(self._span.get_span_context().trace_id, "032x")

    def end(self, route: str | None, status: int, error: BaseException | None = None) -> None:
        """Name the span by its route template, record the outcome, end it and leave its context.

        ``status`` is what the client was sent (500 when nothing was).
        """
        from opentelemetry import context
        from opentelemetry.trace import StatusCode

        span = self._span
        if route is not None:
            span.update_name(f"{self._method} {route}")
            span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        # For a server span only a 5xx is an error: a 4xx is the client's.
        if error is not None:
            _mark_failed(span, error)
        elif status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(StatusCode.ERROR)
        span.end()
        _request_tracer.reset(self._tracer_token)
        context.detach(self._context_token)


def _mark_failed(span: Span, error: BaseException) -> None:
    """The error's type (and a database error's SQLSTATE), never its message."""
    from opentelemetry.trace import StatusCode

    span.set_attribute("error.type", type(error).__qualname__)
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str):
        span.set_attribute("db.response.status_code", sqlstate)
    span.set_status(StatusCode.ERROR)


def open_tracer(settings: Settings, span_processor: SpanProcessor | None = None) -> Tracer | None:
    """The app's tracer, or None when tracing is off.

    Spans go to the exporters the settings name (``OTEL_TRACES_EXPORTER``,
    OTLP by default when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set) and to
    ``span_processor`` when one is given (tests pass an in-memory exporter's),
    which turns tracing on by itself.
    """
    if not settings.tracing and span_processor is None:
        return None
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError as exc:
        raise SettingsError(
            "OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER asks for traces, and "
            f"OpenTelemetry is not installed ({exc.name}): install opentelemetry-sdk "
            "and opentelemetry-exporter-otlp-proto-http"
        ) from exc

    processors = _exporting_processors(settings)
    if span_processor is not None:
        processors.append(span_processor)
    # Not shut down at exit by the SDK (an atexit hook per provider, kept for
    # the life of the process): the lifespan shuts it down.
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: settings.otel_service_name}),
        shutdown_on_exit=False,
    )
    for processor in processors:
        provider.add_span_processor(processor)
    return Tracer(provider)


def _exporting_processors(settings: Settings) -> list[SpanProcessor]:
    if not settings.tracing:
        return []
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    named = settings.otel_traces_exporter or "otlp"
    names = {name.strip().lower() for name in named.split(",")} - {"", "none"}
    unknown = sorted(names.difference(EXPORTERS))
    if unknown:
        raise SettingsError(
            f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} is not one of {', '.join(EXPORTERS)}"
        )
    exporters: list[SpanExporter] = []
    if "otlp" in names:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The base endpoint, as OTEL_EXPORTER_OTLP_ENDPOINT names it: the
        # exporter is given the traces path under it.
        base = settings.otel_exporter_otlp_endpoint
        endpoint = None if base is None else f"{base.removesuffix('/')}/v1/traces"
        exporters.append(OTLPSpanExporter(endpoint=endpoint))
    if "console" in names:
        exporters.append(ConsoleSpanExporter())
    # Batched: spans are encoded and sent by the processor's own thread, off the request.
    return [BatchSpanProcessor(exporter) for exporter in exporters]
