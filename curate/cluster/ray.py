"""Shards of a job on a Ray cluster: one actor per worker loads its model once and takes shard
after shard; results come back to the driver through Ray's object store, so no filesystem is
shared and only the driver writes (DuckDB's one-writer rule holds).

Faults: a shard whose actor dies (node lost, out of memory, kill -9) goes back to the queue and
runs again on another actor (or on the same one once Ray has restarted it); a shard that kills
its actor MAX_ATTEMPTS times stops the job with one line. An error of the job's own code in a
worker (a bad student, a template error) stops the job with that error's message.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

INSTALL = "pip install 'curate[ray]'"
MAX_ATTEMPTS = 3  # runs of one shard whose actor died, before the job stops
WAIT_SECONDS = 1800  # with nothing finishing for this long (every worker gone, none placed again), stop
START_SECONDS = 900  # to place every worker and load its model
CONNECT_SECONDS = 10  # for a cluster's head to answer


@dataclass(frozen=True)
class Shard:
    """One unit of work: its key (for messages), its size (for progress) and what the worker takes."""

    key: str
    size: int
    payload: Any


@dataclass
class WorkerStats:
    """What one actor did: shards and items done, the work units it counts (tokens), its busy seconds."""

    worker: int
    node: str = ""
    shards: int = 0
    items: int = 0
    units: int = 0
    seconds: float = 0.0
    deaths: int = 0

    def line(self, unit: str) -> str:
        """One line of the job's summary."""
        rate = self.units / self.seconds if self.seconds else 0.0
        return (
            f"worker {self.worker} (node {self.node[:8] or '?'}): {self.shards} shards, {self.items} items, "
            f"{self.units:,} {unit} in {self.seconds:.1f} s ({rate:,.0f} {unit}/s)"
            + (f", {self.deaths} deaths" if self.deaths else "")
        )


@dataclass
class ClusterRun:
    """The workers of a finished job."""

    workers: list[WorkerStats] = field(default_factory=list)


def import_ray() -> Any:
    """The `ray` module, or one clear line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RuntimeError(f"--ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def connect(address: str) -> Any:
    """Join the cluster at `address`: `local` starts one on this machine, `auto` finds RAY_ADDRESS or
    a running cluster, otherwise `host:port` (a cluster node) or `ray://host:port` (Ray Client)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if address not in ("local", "auto") and not address.startswith("ray://"):
        _reachable(address)  # Ray itself retries an address that answers nothing for minutes
    # Workers' own output stays on their nodes: the driver's stdout carries the job's results.
    options: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False, "logging_level": "warning"}
    try:
        ray.init(**options) if address == "local" else ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise RuntimeError(f"--ray {address}: {str(error).strip().splitlines()[0]}") from None
    return ray


def _reachable(address: str) -> None:
    """Fail in one line unless something listens at `host:port` (a cluster's head)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray {address!r}: expected local, auto, host:port or ray://host:port")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise RuntimeError(
            f"--ray {address}: no Ray cluster answers there ({error.strerror or error}); start one "
            "with `ray start --head`, or use --ray local"
        ) from None


def default_workers(ray: Any) -> int:
    """One worker per GPU of the cluster, else one per node."""
    gpus = int(ray.cluster_resources().get("GPU", 0))
    return gpus or sum(1 for node in ray.nodes() if node["Alive"])


def actor_options(ray: Any, workers: int) -> dict[str, Any]:
    """Resources of one worker: a GPU where the cluster has them, else an equal share of its CPUs,
    no more than the largest node holds (an actor runs on one node)."""
    if ray.cluster_resources().get("GPU", 0):
        return {"num_gpus": 1}
    nodes = [node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]]
    share = ray.cluster_resources().get("CPU", 1) // workers
    return {"num_cpus": max(1, int(min(share, max(nodes, default=1))))}


def run_shards(
    ray: Any,
    worker_class: type,
    init: tuple,
    method: str,
    shards: Iterable[Shard],
    workers: int,
    on_result: Callable[[Shard, Any], int],
    progress: Callable[[int], object] | None = None,
) -> ClusterRun:
    """Run every shard on `workers` actors, each holding one `worker_class(*init)`, by calling its
    `method(payload)`; `on_result(shard, value)` (in the driver, in completion order) returns the
    units the shard counted. A shard whose actor died runs again; see the module docstring."""
    remote = ray.remote(max_restarts=-1, max_task_retries=0)(_Worker)
    options = actor_options(ray, workers)
    actors = [remote.options(**options).remote(worker_class, init) for _ in range(workers)]
    _started(ray, actors, options)
    stats = [WorkerStats(i) for i in range(workers)]
    fresh = iter(shards)  # pulled as actors free up: a shard's payload is read only when it is sent
    queue: deque[Shard] = deque()  # shards to run again
    attempts: dict[str, int] = {}
    idle = deque(range(workers))
    busy: dict[Any, tuple[int, Shard | None, float]] = {}  # a shard's result, or (shard None) a ping
    try:
        while True:
            while idle and (shard := queue.popleft() if queue else next(fresh, None)) is not None:
                w = idle.popleft()
                busy[actors[w].call.remote(method, shard.payload)] = (w, shard, time.perf_counter())
            if not any(shard is not None for _, shard, _ in busy.values()):
                break
            ready, _ = ray.wait(list(busy), num_returns=1, timeout=WAIT_SECONDS)
            if not ready:
                raise RuntimeError(
                    f"no worker finished anything for {WAIT_SECONDS} s (are the cluster's nodes "
                    "gone?); the shards done so far are kept"
                )
            done = ready[0]
            w, shard, started = busy.pop(done)
            try:
                value, node = ray.get(done)
            except ray.exceptions.RayTaskError as error:
                raise (error.cause or error) from None
            except ray.exceptions.RayActorError as error:
                if getattr(error, "actor_init_failed", False):
                    raise RuntimeError(f"a worker could not start: {_last_error(error)}") from None
                if shard is not None:
                    stats[w].deaths += 1
                    attempts[shard.key] = attempts.get(shard.key, 0) + 1
                    if attempts[shard.key] >= MAX_ATTEMPTS:
                        raise RuntimeError(
                            f"shard {shard.key}: its worker died {MAX_ATTEMPTS} times "
                            f"({type(error).__name__}); the shards done so far are kept"
                        ) from None
                    queue.appendleft(shard)  # first in line for the next free actor
                time.sleep(0.2)  # the actor is being restarted: ask again whether it is back
                busy[actors[w].ping.remote()] = (w, None, time.perf_counter())
                continue
            if shard is not None:
                stats[w].node = node
                stats[w].shards += 1
                stats[w].items += shard.size
                stats[w].units += on_result(shard, value)
                stats[w].seconds += time.perf_counter() - started
                if progress is not None:
                    progress(shard.size)
            idle.append(w)
    finally:
        for actor in actors:
            ray.kill(actor)
    return ClusterRun(stats)


def _started(ray: Any, actors: list, options: dict[str, Any]) -> None:
    """Wait until every actor has built its worker (loaded its model); one line if one cannot."""
    pings = [actor.ping.remote() for actor in actors]
    _, pending = ray.wait(pings, num_returns=len(pings), timeout=START_SECONDS)
    if pending:
        raise RuntimeError(
            f"{len(pending)} of {len(actors)} workers did not start within {START_SECONDS} s: "
            f"no node may have {options} free for them (see `ray status`); try fewer --workers"
        )
    for ping in pings:
        try:
            ray.get(ping)
        except ray.exceptions.RayActorError as error:
            raise RuntimeError(f"a worker could not start: {_last_error(error)}") from None


class _Worker:
    """The actor: the job's own worker object, built once on its node, and a ping."""

    def __init__(self, worker_class: type, init: tuple) -> None:
        self.worker = worker_class(*init)

    def call(self, method: str, payload: Any) -> tuple[Any, str]:
        return getattr(self.worker, method)(payload), node_id()

    def ping(self) -> tuple[None, str]:
        return None, node_id()


def _last_error(error: Exception) -> str:
    """The `Type: message` line of a worker's traceback (Ray wraps it in its own text)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    found = [
        line
        for line in lines
        if ": " in line
        and line.split(":", 1)[0].replace(".", "").isidentifier()
        and line.split(":", 1)[0].endswith(("Error", "Exception"))
    ]
    return found[-1] if found else lines[-1]


def node_id() -> str:
    """The Ray node this process runs on (inside a worker), or this machine's host name."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - only a label for the summary
        return os.uname().nodename
