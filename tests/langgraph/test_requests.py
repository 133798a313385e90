"""What ItineraSaver costs: one request per saver call, in MessagePack, without an
Idempotency-Key (every thread route is idempotent by its own keys), three database round
trips each as the service counts them; a two-node graph with an interrupt in nine."""

from __future__ import annotations

import operator
import uuid
from collections import Counter
from typing import Annotated, Any, TypedDict

import httpx
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph
from prometheus_client.parser import text_string_to_metric_families

from itinera_client import ItineraClient, SyncItineraClient
from itinera_client.langgraph import ItineraSaver
from tests.support.live_service import LiveService
from tests.support.recording import Recorder

MSGPACK = "application/msgpack"


def thread_counts(base_url: str) -> Counter[tuple[str, str, str]]:
    """The service's requests and database round trips on the thread routes so far, by
    (what, method, route)."""
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    counts: Counter[tuple[str, str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            route = sample.labels.get("route", "")
            if not route.startswith("/v1/threads"):
                continue
            if sample.name == "itinera_http_requests_total":
                counts["requests", sample.labels["method"], route] += int(sample.value)
            elif sample.name == "itinera_db_round_trips_total":
                counts["database", sample.labels["method"], route] += int(sample.value)
    return counts


def since(before: Counter[tuple[str, str, str]], base_url: str) -> dict[tuple[str, str, str], int]:
    after = thread_counts(base_url)
    return {key: after[key] - before[key] for key in after if after[key] != before[key]}


def saw_the_key(saver: ItineraSaver) -> None:
    """A key the service has not seen yet costs its first request a lookup more."""
    assert saver.get_tuple({"configurable": {"thread_id": "no-such-thread"}}) is None


def per_route(calls: int, method: str, route: str) -> dict[tuple[str, str, str], int]:
    return {("requests", method, route): calls, ("database", method, route): 3 * calls}


def test_each_call_is_one_msgpack_request_without_a_key_and_three_round_trips(
    live_tenant: LiveService, api_key: str
) -> None:
    recorder = Recorder()
    url = live_tenant.base_url
    config: Any = {"configurable": {"thread_id": f"t-{uuid.uuid4()}", "checkpoint_ns": ""}}
    with (
        recorder.sync_http() as http,
        SyncItineraClient(url, api_key=api_key, http_client=http) as client,
    ):
        saver = ItineraSaver(sync_client=client)
        saw_the_key(saver)
        before, seen = thread_counts(url), len(recorder.exchanges)
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {f"c{n}": list(range(n)) for n in range(10)}
        checkpoint["channel_versions"] = {
            f"c{n}": saver.get_next_version(None, None) for n in range(10)
        }
        saved = saver.put(config, checkpoint, {"step": 0}, checkpoint["channel_versions"])
        saver.put_writes(saved, [("c1", [1]), ("c2", [2])], "task-1")
        assert saver.get_tuple(config) is not None
        assert len(list(saver.list(config, filter={"step": 0}))) == 1
        saver.copy_thread(config["configurable"]["thread_id"], f"copy-{uuid.uuid4()}")
        saver.delete_for_runs(["no-such-run"])
        saver.delete_thread(config["configurable"]["thread_id"])

    assert since(before, url) == {
        **per_route(1, "POST", "/v1/threads/checkpoints"),
        **per_route(1, "POST", "/v1/threads/writes"),
        **per_route(1, "GET", "/v1/threads/checkpoint"),
        **per_route(1, "POST", "/v1/threads/checkpoints/search"),
        **per_route(1, "POST", "/v1/threads/copy"),
        **per_route(1, "POST", "/v1/threads/delete-for-runs"),
        **per_route(1, "DELETE", "/v1/threads"),
    }
    assert len(recorder.since(seen)) == 7
    for exchange in recorder.since(seen):
        assert exchange.idempotency_key is None
        assert exchange.status < 300
        if exchange.method == "POST":
            assert exchange.request_headers["content-type"] == MSGPACK
        if exchange.body:
            assert exchange.response_headers["content-type"] == MSGPACK


class Story(TypedDict):
    log: Annotated[list[str], operator.add]


async def test_a_two_node_graph_with_an_interrupt_saves_through_nine_requests(
    live_tenant: LiveService, api_key: str
) -> None:
    graph = StateGraph(Story)
    graph.add_node("plan", lambda _: {"log": ["plan"]})
    graph.add_node("book", lambda _: {"log": ["book"]})
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "book")
    graph.add_edge("book", END)
    url = live_tenant.base_url
    async with ItineraClient(url, api_key=api_key) as client:
        saver = ItineraSaver(client=client)
        assert await saver.aget_tuple({"configurable": {"thread_id": "no-such-thread"}}) is None
        before = thread_counts(url)
        app = graph.compile(checkpointer=saver, interrupt_before=["book"])
        config: Any = {"configurable": {"thread_id": f"trip/{uuid.uuid4()}"}}
        await app.ainvoke({"log": ["start"]}, config)
        assert (await app.ainvoke(None, config))["log"] == ["start", "plan", "book"]
    # Each invocation reads the thread once, then saves a checkpoint per step (the input,
    # and one after each node) with the writes of each task in between.
    assert since(before, url) == {
        **per_route(2, "GET", "/v1/threads/checkpoint"),
        **per_route(4, "POST", "/v1/threads/checkpoints"),
        **per_route(3, "POST", "/v1/threads/writes"),
    }
