"""Real graphs on ItineraSaver: an interrupt, a resume (from another saver, as another
process would), the state and its history, through the sync face (``invoke``) and the
async one (``ainvoke``); parallel tasks and a subgraph's interrupt as on LangGraph's own
InMemorySaver; a DeltaChannel's state rebuilt from older writes; and tasks and threads
sharing one saver running side by side."""

from __future__ import annotations

import asyncio
import itertools
import operator
import threading
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

import httpx
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Send, StateSnapshot, interrupt

from itinera_client import ItineraClient, SyncItineraClient
from itinera_client.langgraph import ItineraSaver
from tests.support.live_service import LiveService


class Trip(TypedDict, total=False):
    request: str
    plan: str
    approved: bool
    log: Annotated[list[str], operator.add]


def plan(state: Trip) -> Trip:
    return {"plan": f"5 days of diving, {state['request']}", "log": ["plan"]}


def approve(state: Trip) -> Trip:
    answer = interrupt({"question": "book this?", "plan": state["plan"]})
    return {"approved": answer == "yes", "log": [f"approve: {answer}"]}


def trip_graph(saver: ItineraSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    graph = StateGraph(Trip)
    graph.add_node("plan", plan)
    graph.add_node("approve", approve)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "approve")
    graph.add_edge("approve", END)
    return graph.compile(checkpointer=saver)


def new_thread() -> RunnableConfig:
    return {"configurable": {"thread_id": f"trips/{uuid.uuid4()}"}}


PLAN = "5 days of diving, Red Sea in May"
DONE: Trip = {
    "request": "Red Sea in May",
    "plan": PLAN,
    "approved": True,
    "log": ["plan", "approve: yes"],
}


def assert_history(history: Sequence[Any]) -> None:
    """Newest first: done, waiting at approve (with its interrupt), before plan, the input."""
    assert [s.metadata["step"] for s in history] == [2, 1, 0, -1]
    assert [s.next for s in history] == [(), ("approve",), ("plan",), ("__start__",)]
    assert history[0].values == DONE
    assert [i.value["plan"] for i in history[1].interrupts] == [PLAN]
    for newer, older in itertools.pairwise(history):
        assert newer.parent_config == older.config


def test_invoke_interrupts_and_another_saver_resumes_the_thread(
    live_tenant: LiveService, api_key: str
) -> None:
    config = new_thread()
    with SyncItineraClient(live_tenant.base_url, api_key=api_key) as client:
        first = trip_graph(ItineraSaver(sync_client=client))
        paused = first.invoke({"request": "Red Sea in May"}, config)
        [asked] = paused["__interrupt__"]
        assert asked.value == {"question": "book this?", "plan": PLAN}

    # A saver of its own, as a worker that picks the thread up later would have.
    with ItineraSaver(base_url=live_tenant.base_url, api_key=api_key) as saver:
        later = trip_graph(saver)
        waiting = later.get_state(config)
        assert waiting.next == ("approve",)
        assert [i.value for i in waiting.interrupts] == [asked.value]
        assert later.invoke(Command(resume="yes"), config) == DONE
        assert later.get_state(config).values == DONE
        assert_history(list(later.get_state_history(config)))


async def test_ainvoke_interrupts_and_another_saver_resumes_the_thread(
    live_tenant: LiveService, api_key: str
) -> None:
    config = new_thread()
    async with ItineraClient(live_tenant.base_url, api_key=api_key) as client:
        first = trip_graph(ItineraSaver(client=client))
        paused = await first.ainvoke({"request": "Red Sea in May"}, config)
        assert [i.value["plan"] for i in paused["__interrupt__"]] == [PLAN]

    async with ItineraSaver(base_url=live_tenant.base_url, api_key=api_key) as saver:
        later = trip_graph(saver)
        assert (await later.aget_state(config)).next == ("approve",)
        assert await later.ainvoke(Command(resume="yes"), config) == DONE
        assert (await later.aget_state(config)).values == DONE
        assert_history([s async for s in later.aget_state_history(config)])


async def test_invoke_in_a_running_loops_worker_thread_and_ainvoke_share_a_thread(
    saver: ItineraSaver,
) -> None:
    """The sync face needs no event loop of its own: ``invoke`` runs in a worker thread of
    this test's loop, and the async face resumes what it saved."""
    app = trip_graph(saver)
    config = new_thread()
    await asyncio.to_thread(app.invoke, {"request": "Red Sea in May"}, config)
    assert await app.ainvoke(Command(resume="yes"), config) == DONE
    synced = await asyncio.to_thread(lambda: list(app.get_state_history(config)))
    assert synced == [s async for s in app.aget_state_history(config)]


class Fan(TypedDict, total=False):
    items: list[str]
    results: Annotated[list[str], operator.add]
    answer: str


class Answer(TypedDict, total=False):
    answer: str


def fan_graph(saver: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Parallel tasks (one Send per item), then a subgraph that asks before answering."""
    ask = StateGraph(Answer)
    ask.add_node("ask", lambda _: {"answer": interrupt("go on?")})
    ask.add_edge(START, "ask")
    ask.add_edge("ask", END)
    graph = StateGraph(Fan)
    graph.add_node("fan", lambda _: {})
    graph.add_node("work", lambda state: {"results": [state["items"][0].upper()]})
    graph.add_node("ask", ask.compile())
    graph.add_edge(START, "fan")
    graph.add_conditional_edges(
        "fan", lambda state: [Send("work", {"items": [item]}) for item in state["items"]]
    )
    graph.add_edge("work", "ask")
    graph.add_edge("ask", END)
    return graph.compile(checkpointer=saver)


async def test_parallel_tasks_and_a_subgraphs_interrupt_run_as_on_langgraphs_own_saver(
    saver: ItineraSaver,
) -> None:
    """Pending writes of many tasks, a subgraph's namespace, an interrupt inside it: what
    the graph answers, its state and its history are those of LangGraph's InMemorySaver."""

    async def run(checkpointer: BaseCheckpointSaver[Any]) -> list[Any]:
        app = fan_graph(checkpointer)
        config: RunnableConfig = {"configurable": {"thread_id": f"fan/{uuid.uuid4()}"}}
        paused = await app.ainvoke({"items": ["a", "b", "c"]}, config)
        waiting = await app.aget_state(config, subgraphs=True)
        done = await app.ainvoke(Command(resume="yes"), config)
        history = [(s.metadata, s.next, s.values) async for s in app.aget_state_history(config)]
        return [
            [i.value for i in paused["__interrupt__"]],
            [
                (t.name, t.state.next if isinstance(t.state, StateSnapshot) else None)
                for t in waiting.tasks
            ],
            done,
            history,
            app.get_state(config).values,
        ]

    ours = await run(saver)
    assert ours == await run(InMemorySaver())
    assert ours[2] == {"items": ["a", "b", "c"], "results": ["A", "B", "C"], "answer": "yes"}


def extend(messages: list[str], updates: Sequence[list[str]]) -> list[str]:
    return messages + [m for update in updates for m in update]


class Chat(TypedDict):
    # A snapshot every third update: the state in between is rebuilt from older writes.
    messages: Annotated[list[str], DeltaChannel(extend, snapshot_frequency=3)]


def chat_graph(saver: ItineraSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    graph = StateGraph(Chat)
    graph.add_node("answer", lambda state: {"messages": [f"answer {len(state['messages'])}"]})
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    return graph.compile(checkpointer=saver)


async def test_a_delta_channel_is_rebuilt_from_older_writes_and_refuses_keep_latest(
    saver: ItineraSaver,
) -> None:
    app = chat_graph(saver)
    config = new_thread()
    for n in range(4):
        await app.ainvoke({"messages": [f"ask {n}"]}, config)
    expected = [m for n in range(4) for m in (f"ask {n}", f"answer {2 * n + 1}")]
    assert (await app.aget_state(config)).values == {"messages": expected}
    assert app.get_state(config).values == {"messages": expected}

    thread_id = config["configurable"]["thread_id"]
    with pytest.raises(NotImplementedError, match="DeltaChannel"):
        await saver.aprune([thread_id])
    with pytest.raises(NotImplementedError, match="DeltaChannel"):
        saver.prune([thread_id])
    assert (await app.aget_state(config)).values == {"messages": expected}
    await saver.aprune([thread_id], strategy="delete")
    assert await saver.aget_tuple(config) is None


async def test_prune_checks_its_arguments_before_sending_anything(saver: ItineraSaver) -> None:
    with pytest.raises(TypeError):
        await saver.aprune("a-thread")
    with pytest.raises(ValueError, match="strategy"):
        saver.prune(["a-thread"], strategy="keep_oldest")


class InFlight(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Counts the requests on their way, sync or async, and remembers the most at once."""

    def __init__(self) -> None:
        self._async = httpx.AsyncHTTPTransport()
        self._sync = httpx.HTTPTransport()
        self._lock = threading.Lock()
        self.now = self.most = 0

    def _enter(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def _leave(self) -> None:
        with self._lock:
            self.now -= 1

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._enter()
        try:
            return await self._async.handle_async_request(request)
        finally:
            self._leave()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._enter()
        try:
            return self._sync.handle_request(request)
        finally:
            self._leave()

    async def aclose(self) -> None:
        await self._async.aclose()

    def close(self) -> None:
        self._sync.close()


def checkpoint_config(thread_id: str) -> tuple[RunnableConfig, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}, empty_checkpoint()


async def test_tasks_and_threads_sharing_one_saver_are_not_serialised(
    live_tenant: LiveService, api_key: str
) -> None:
    """16 saves at once on one saver are all on their way together: nothing in the saver
    makes them take turns (the service's answers take milliseconds, starting them all
    takes far less)."""
    transport = InFlight()
    url = live_tenant.base_url
    async with (
        httpx.AsyncClient(transport=transport) as async_http,
        ItineraClient(url, api_key=api_key, http_client=async_http) as client,
    ):
        saver = ItineraSaver(client=client)
        await asyncio.gather(*(saver.aput(*checkpoint_config(f"t{n}"), {}, {}) for n in range(16)))
    assert transport.most == 16

    transport.most = 0
    barrier = threading.Barrier(8, timeout=30)
    failures: list[BaseException] = []
    with (
        httpx.Client(transport=transport) as sync_http,
        SyncItineraClient(url, api_key=api_key, http_client=sync_http) as sync_client,
    ):
        saver = ItineraSaver(sync_client=sync_client)

        def save(n: int) -> None:
            try:
                barrier.wait()
                saver.put(*checkpoint_config(f"s{n}"), {}, {})
            except BaseException as exc:
                failures.append(exc)

        workers = [threading.Thread(target=save, args=(n,)) for n in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            await asyncio.to_thread(worker.join)
    assert failures == []
    assert transport.most >= 4
