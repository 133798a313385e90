"""A page for each problem ``type`` of ours: what the problem means and what to do about it.

Our types are relative URIs (``/problems/validation``): resolved against the
request's URL they land here, on the service that answered. Each page is
static HTML generated once from :data:`EXPLANATIONS`; its status is the one
``http.ERROR_TABLE`` answers with the type, and its title the one the problem
itself carries. No script, and a Content-Security-Policy that allows nothing
but its one inline style. IANA's ``quota-exceeded`` is explained by IANA's
registry, and ``about:blank`` by the status alone (RFC 9457 §4.2.1).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import dataclass

import msgspec
from starlette.responses import Response

from itinera import http
from itinera.errors import NotFoundError
from itinera.routing import Api, Context
from itinera_client.schemas.problems import Problem

api = Api(tag="operations")

PREFIX = "/problems/"


@dataclass(frozen=True)
class Explanation:
    name: str  # a heading, more particular than the status' title
    when: str
    what_to_do: str


# Text in `backticks` is set as code.
EXPLANATIONS: dict[str, Explanation] = {
    http.VALIDATION: Explanation(
        "The request breaks the schema or a rule",
        "The body is JSON but does not fit the operation: a value of the wrong type, a "
        "required field missing or an unknown one present, a number out of range, a value "
        "outside its enum, end before start, an id inside the body that names nothing in "
        "your org, a NUL character in text. Query parameters are held to the same: an "
        "unknown parameter, `limit` outside 1-200, a parameter given twice.",
        "Read `errors`: each entry names the field, by `pointer` (a JSON Pointer into the "
        "body) or `parameter` (a query parameter), with a `detail`. Correct the request "
        "against the schema in `/openapi.json` and send it again; sent unchanged, it fails "
        "the same way.",
    ),
    http.MALFORMED: Explanation(
        "The request cannot be read",
        "The body is not JSON (a syntax error, trailing data, text that is not UTF-8, "
        "nesting too deep), a `cursor` was not issued by this route to your org, or an "
        "`Idempotency-Key` is missing where it is required, malformed, or sent twice.",
        "Send JSON with `Content-Type: application/json`. Pass `next_cursor` back as it "
        "came, to the list that issued it. Send one `Idempotency-Key` of 1-255 visible "
        "ASCII characters.",
    ),
    http.NOT_FOUND: Explanation(
        "No such resource",
        "Nothing with this id exists in your org (an id of another org is not found either: "
        "never forbidden), it was deleted, or no route has this path.",
        "Check the id and the path, and that your token belongs to the org that owns the "
        "resource. A DELETE that answers this found nothing left to delete.",
    ),
    http.DUPLICATE: Explanation(
        "Something with this value exists",
        "Creating or changing the resource would break a unique rule of your org, such as "
        "a destination slug already taken or a user's email already registered (emails "
        "compare without regard to case).",
        "Choose another value, or read the resource that has it and use that one.",
    ),
    http.CONFLICT: Explanation(
        "The resource's state forbids this",
        "The resource is in a state that does not allow the operation: an agent run asked "
        "to move to a status it cannot reach from its own, an append to a finished run, "
        "demoting or disabling the org's last enabled admin.",
        "Read the resource to see its state. The same request keeps failing until that "
        "state changes (for the last admin: make another user an admin first).",
    ),
    http.IDEMPOTENCY_KEY_REUSED: Explanation(
        "This Idempotency-Key was used for another request",
        "You sent an `Idempotency-Key` that you already used, while its record lives (24 "
        "hours by default), for a request with another method, path, query, `If-Match` or "
        "body.",
        "Use a fresh key for each new request. Reuse a key only to retry the very same "
        "request, which then answers the stored response.",
    ),
    http.IDEMPOTENCY_IN_FLIGHT: Explanation(
        "A request with this Idempotency-Key is still running",
        "Another request with the same `Idempotency-Key` (yours, from a retry or a second "
        "connection) has not finished yet.",
        "Wait the seconds in `Retry-After`, then send the same request again: once the "
        "first has finished, it answers that one's response, marked "
        "`Idempotent-Replayed: true`, and changes nothing twice.",
    ),
    http.PRECONDITION_FAILED: Explanation(
        "The resource has changed since you read it",
        "`If-Match` names a version that is no longer current: someone changed the "
        "resource after you read it (or the tag is weak, which never matches a write). "
        "Nothing was changed.",
        "GET the resource again, apply your change to what it holds now, and send it with "
        "the new `ETag` in `If-Match`.",
    ),
    http.PRECONDITION_REQUIRED: Explanation(
        "The write must name the version it changes",
        "A PUT or PATCH of an itinerary came without `If-Match` (or with `*`): writes to "
        "an itinerary must name the version they change, so that two writers cannot "
        "silently overwrite each other.",
        "GET the itinerary and send its `ETag` in `If-Match` with the write.",
    ),
}

_STYLE = """
:root { color-scheme: light dark; }
body { margin: 0 auto; max-width: 44rem; padding: 2rem 1.5rem;
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
.type, .note { color: GrayText; }
h1 { margin: .2rem 0 .4rem; font-size: 1.6rem; line-height: 1.25; }
h2 { margin: 1.6rem 0 .3rem; font-size: 1.05rem; }
"""

_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        f"style-src 'sha256-{_STYLE_HASH}'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "public, max-age=3600",
}

_CODE = re.compile(r"`([^`]+)`")


def _text(source: str) -> str:
    return _CODE.sub(r"<code>\1</code>", html.escape(source))


def statuses_of(problem_type: str) -> list[int]:
    """The statuses the service answers with ``problem_type``, from the one error table."""
    return sorted({status for status, t in http.ERROR_TABLE.values() if t == problem_type})


def title_of(status: int, problem_type: str) -> str:
    """The ``title`` a problem of this status and type carries, as the service builds it."""
    body = http.problem_response(status, type=problem_type).body
    return msgspec.json.decode(body, type=Problem).title


def render(problem_type: str, explanation: Explanation) -> bytes:
    statuses = ", ".join(f"{s} {title_of(s, problem_type)}" for s in statuses_of(problem_type))
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{html.escape(explanation.name)} - Itinera problem type</title>
<style>{_STYLE}</style>
</head>
<body>
<p class="type">Itinera problem type <code>{html.escape(problem_type)}</code></p>
<h1>{html.escape(explanation.name)}</h1>
<p>HTTP status: <strong>{html.escape(statuses)}</strong></p>
<h2>When it happens</h2>
<p>{_text(explanation.when)}</p>
<h2>What to do</h2>
<p>{_text(explanation.what_to_do)}</p>
<p class="note">The answer is an RFC 9457 problem (<code>application/problem+json</code>):
its <code>type</code> names this page, its <code>detail</code> what went wrong with your
request. The <a href="/docs">API documentation</a> describes every operation.</p>
</body>
</html>
""".encode()


PAGES: dict[str, bytes] = {
    problem_type.removeprefix(PREFIX): render(problem_type, explanation)
    for problem_type, explanation in EXPLANATIONS.items()
}


@api.get(
    "/problems/{name}",
    summary="What a problem type of this API means, and what to do about it",
    response="text/html",
    public=True,
    bucket=None,
    uses_database=False,
)
async def problem_type_page(ctx: Context) -> Response:
    """The page a problem's ``type`` (``/problems/validation``, ...) resolves to."""
    page = PAGES.get(ctx.path_params["name"])
    if page is None:
        raise NotFoundError("no such problem type")
    return Response(page, media_type="text/html", headers=HEADERS)
