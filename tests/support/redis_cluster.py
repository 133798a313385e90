"""A real Redis Cluster on loopback ports: Debian's redis-server and redis-cli.

Primaries only (no replicas), so a killed primary's slots stay with it: the
cluster is told not to require full coverage, and the other primaries keep
serving their slots (what an operator without replicas configures too).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

# Short, so a killed primary is marked failed by the others within seconds.
NODE_TIMEOUT_MS = 2000


def _executable(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (Debian package {package})")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class NodeProcess:
    port: int
    bus_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        """A plain (non-cluster) connection to this node only."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self, executable: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(self.bus_port),
                "--cluster-config-file",
                str(self.directory / "nodes.conf"),
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--cluster-require-full-coverage",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis-server on {self.name} exited ({self.process.returncode})")
        try:
            with self.client() as node:
                return bool(node.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None


class RedisClusterProcesses:
    """``primaries`` redis-server processes joined by ``redis-cli --cluster create``."""

    def __init__(self, directory: Path, primaries: int = 3) -> None:
        self.server = _executable("redis-server", "redis-server")
        self.cli = _executable("redis-cli", "redis-tools")
        self.nodes = [
            NodeProcess(_free_port(), _free_port(), directory / f"node-{n}")
            for n in range(primaries)
        ]

    @property
    def url(self) -> str:
        """One node's URL, as REDIS_URL: the client discovers the others."""
        return f"redis://{self.nodes[0].name}"

    @property
    def live_nodes(self) -> list[NodeProcess]:
        return [node for node in self.nodes if node.running]

    def start(self) -> None:
        for node in self.nodes:
            node.start(self.server)
        for node in self.nodes:
            self._wait(node.answers, f"redis-server on {node.name} did not start")
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(node.name for node in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )
        self._wait(self._every_node_serves_every_slot, "the cluster did not reach state ok")

    def slot_of(self, key: str) -> int:
        """The key's slot, as the servers compute it (CLUSTER KEYSLOT)."""
        with self.live_nodes[0].client() as client:
            return int(client.cluster("KEYSLOT", key))

    def node_of(self, key: str) -> NodeProcess:
        """The primary owning the key's slot, from the servers' own slot map."""
        slot = self.slot_of(key)
        with self.live_nodes[0].client() as client:
            slots = client.cluster("SLOTS")
        # CLUSTER SLOTS: [first, last, [host, port, id] of the primary, replicas…]
        for first, last, (_, port, *_), *_ in slots:
            if first <= slot <= last:
                return next(node for node in self.nodes if node.port == port)
        raise LookupError(f"no primary owns slot {slot}")

    def kill(self, node: NodeProcess) -> None:
        """Terminate one primary, and wait until the others have marked it failed."""
        node.stop()
        self._wait(lambda: self._marked_failed(node), f"{node.name} was not marked failed")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def _every_node_serves_every_slot(self) -> bool:
        for node in self.nodes:
            with node.client() as client:
                info = client.cluster("INFO")
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                return False
            if info.get("cluster_known_nodes") != str(len(self.nodes)):
                return False
        return True

    def _marked_failed(self, dead: NodeProcess) -> bool:
        for node in self.live_nodes:
            with node.client() as client:
                flags = client.cluster("NODES")[dead.name]["flags"]
            if "fail" not in flags.split(","):
                return False
        return True

    @staticmethod
    def _wait(condition: Callable[[], bool], failure: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(failure)
            time.sleep(0.05)


@contextmanager
def redis_cluster(primaries: int = 3) -> Iterator[RedisClusterProcesses]:
    directory = Path(tempfile.mkdtemp(prefix="itinera-redis-cluster-"))
    cluster = RedisClusterProcesses(directory, primaries)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
