"""One watcher per hub process: every Jovial service and its tasks, kept in memory.

Swarm has no task events, so the watcher lists: one `services` call and one `tasks` call per
relist (both for Jovial's label only), whatever the number of servers. A Docker events stream
(services, nodes, and the containers of this node) triggers a relist at once; a periodic relist
repairs whatever the stream missed, every `FAST_INTERVAL` while someone waits (`hurry()`: a
spawn, or a server on its way back after a crash or a lost node) and every `relist_interval`
otherwise. (A waiting spawn probes its server's port between relists: the relists only have to
notice a failure or a move, not the moment the server answers.) The stream is read in a daemon
thread of its own and reconnected with backoff when it ends or breaks (engine restart); its lines
are parsed here, one event each, so an event that cannot be read is logged and skipped (and
relisted for) instead of stopping the thread. Lists run in worker threads. The event loop only
ever sees finished snapshots, so reading one is a dictionary lookup. The first snapshot is kept:
it is what this process found when it started (`first`).

The watcher starts on first use and is bound to the event loop it started on.
"""

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import docker
from docker.utils.json_stream import split_buffer

from ...spec import MANAGED_LABEL
from .tasks import Task

FAST_INTERVAL = 1.0
# Seconds between the starts of two relists however many events come: when a class starts at
# once, each of its containers' start is an event, and relisting (decoding every Jovial task)
# for each one was a quarter of the hub's CPU. A starting server answers a second or more after
# its container starts, so seeing it running half a second later delays nobody.
MIN_GAP = 0.5
RECONNECT_FIRST, RECONNECT_MAX = 1.0, 30.0
CLOSE_TIMEOUT = 10.0
CONTAINER_ACTIONS = frozenset({"start", "die", "destroy"})
SERVICE_ACTIONS = frozenset({"create", "update", "remove"})  # also a node's (a node going down or coming back is an update)
# Only the actions that matter, filtered by the engine: not the stream of exec and health-check
# events every container with a health check makes (the label filter cannot be used, as it
# would drop service events, which carry no labels).
EVENT_FILTERS = {"type": ["service", "node", "container"], "event": sorted(CONTAINER_ACTIONS | SERVICE_ACTIONS)}


@dataclass(frozen=True)
class ServiceState:
    """One Jovial service as a relist saw it: its networks (names or IDs), its restart policy, its
    tasks and its labels (whose server it is)."""

    networks: frozenset[str]
    tasks: tuple[Task, ...]
    restart_policy: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """Everything one relist saw. `seq` grows with every relist started, so a caller can wait
    for a snapshot listed after some moment (e.g. after it created a service); `began` is the
    event loop's time when the relist started, `listed_at` the wall clock's (seconds since the
    epoch, to compare with Docker's timestamps)."""

    seq: int
    began: float
    listed_at: float
    services: Mapping[str, ServiceState]
    node_names: Mapping[str, str]


def services_by_name(services: Sequence[Mapping[str, Any]], tasks: Sequence[Task]) -> dict[str, ServiceState]:
    """A relist's two answers -> each service's state by name; tasks of other services are dropped."""
    tasks_of: dict[str, list[Task]] = {s["ID"]: [] for s in services}
    for task in tasks:
        if task.get("ServiceID") in tasks_of:
            tasks_of[task["ServiceID"]].append(task)
    return {
        s["Spec"]["Name"]: ServiceState(
            networks=frozenset(n["Target"] for n in s["Spec"].get("TaskTemplate", {}).get("Networks") or []),
            tasks=tuple(tasks_of[s["ID"]]),
            restart_policy=s["Spec"].get("TaskTemplate", {}).get("RestartPolicy") or {},
            labels=s["Spec"].get("Labels") or {},
        )
        for s in services
    }


def unknown_nodes(tasks: Sequence[Task], known: Mapping[str, str]) -> set[str]:
    """IDs of nodes the tasks run on whose names are not known yet."""
    return {t.get("NodeID") or "" for t in tasks} - set(known) - {""}


def node_names(nodes: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """A `nodes` answer -> node ID to hostname."""
    return {n["ID"]: n.get("Description", {}).get("Hostname") or n["ID"][:12] for n in nodes}


def parse_event(line: str) -> Mapping[str, Any]:
    """One line of the events stream (Docker writes one JSON object per line) -> the event;
    ValueError if it is not a JSON object."""
    event = json.loads(line)
    if not isinstance(event, dict):
        raise ValueError(f"a JSON {type(event).__name__}, not an object")
    return event


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def wants_relist(event: Mapping[str, Any]) -> bool:
    """Whether a Docker event may change what a relist sees: any service or node event (a node
    lost or back moves servers), and the start or end of a Jovial container (not its exec or
    health events). Parts missing or of another type count as absent."""
    if event.get("Type") in ("service", "node"):
        return True
    labels = _mapping(_mapping(event.get("Actor")).get("Attributes"))
    return (
        event.get("Type") == "container"
        and event.get("Action") in CONTAINER_ACTIONS
        and labels.get(MANAGED_LABEL) == "true"
    )


class SwarmWatcher:
    """Follows every Jovial service and task for the whole hub process (see the module docstring)."""

    def __init__(self, client: docker.APIClient, log: logging.Logger, relist_interval: float = 5.0) -> None:
        self._client = client
        self._log = log
        self._relist_interval = relist_interval
        self._snapshot: Snapshot | None = None
        self._first: Snapshot | None = None
        self._started_seq = 0
        self._hurrying = 0
        self._wake = asyncio.Event()
        self._updated = asyncio.Event()
        self._closed = threading.Event()
        self._stream: Any = None
        self._loop_task: asyncio.Task[None] | None = None
        self._events_thread: threading.Thread | None = None

    async def newer_than(self, seq: int, timeout: float | None) -> Snapshot | None:
        """The first snapshot from a relist started after relist `seq`; None after `timeout` seconds."""
        self._start()
        try:
            async with asyncio.timeout(timeout):
                while self._snapshot is None or self._snapshot.seq <= seq:
                    await self._updated.wait()
        except TimeoutError:
            return None
        return self._snapshot

    async def first(self) -> Snapshot:
        """The snapshot of this process's first relist (waiting for it): what was there when it began."""
        await self.newer_than(0, None)
        assert self._first is not None  # set with the first snapshot
        return self._first

    def relist_soon(self) -> int:
        """Ask for a relist now; return the seq that every relist starting from now exceeds."""
        self._start()
        self._wake.set()
        return self._started_seq

    @contextmanager
    def hurry(self) -> Iterator[None]:
        """Relist every FAST_INTERVAL while inside (a spawn is waiting for its server)."""
        self._hurrying += 1
        self._wake.set()
        try:
            yield
        finally:
            self._hurrying -= 1

    async def close(self) -> None:
        """Stop relisting and following events (a hub uses one watcher for its whole life; tests don't)."""
        self._closed.set()
        self._close_stream()
        if self._loop_task:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self._events_thread:
            await asyncio.to_thread(self._events_thread.join, CLOSE_TIMEOUT)

    def _start(self) -> None:
        if self._loop_task is not None:
            return
        loop = asyncio.get_running_loop()
        self._loop_task = loop.create_task(self._relist_forever())
        self._events_thread = threading.Thread(target=self._follow_events, args=(loop,), name="jovial-swarm-events", daemon=True)
        self._events_thread.start()

    async def _relist_forever(self) -> None:
        loop = asyncio.get_running_loop()
        failing = False
        while True:
            self._wake.clear()
            began = loop.time()
            try:
                await self._relist()
            except Exception as e:  # the watcher must outlive any Docker hiccup; the next relist repairs
                if not failing:
                    self._log.warning("Listing Jovial's Swarm services failed (%s); retrying", e)
                failing = True
            else:
                if failing:
                    self._log.info("Listing Jovial's Swarm services works again")
                failing = False
            await asyncio.sleep(max(0.0, began + MIN_GAP - loop.time()))
            interval = FAST_INTERVAL if self._hurrying else self._relist_interval
            try:
                async with asyncio.timeout(max(0.0, began + interval - loop.time())):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _relist(self) -> None:
        self._started_seq += 1
        seq, began, listed_at = self._started_seq, asyncio.get_running_loop().time(), time.time()
        known = self._snapshot.node_names if self._snapshot else {}
        services, tasks, nodes = await asyncio.to_thread(self._list, known)
        self._snapshot = Snapshot(seq, began, listed_at, services_by_name(services, tasks), {**known, **nodes})
        self._first = self._first or self._snapshot
        self._updated.set()
        self._updated = asyncio.Event()

    def _list(self, known_nodes: Mapping[str, str]) -> tuple[list[dict[str, Any]], list[Task], dict[str, str]]:
        """The Docker calls of one relist (in a worker thread): two, plus `nodes` when a task is on a new node."""
        jovial_only = {"label": f"{MANAGED_LABEL}=true"}  # tasks carry their container spec's labels
        services = self._client.services(filters=jovial_only)
        tasks = self._client.tasks(filters=jovial_only)
        nodes = node_names(self._client.nodes()) if unknown_nodes(tasks, known_nodes) else {}
        return services, tasks, nodes

    def _follow_events(self, loop: asyncio.AbstractEventLoop) -> None:
        """The events thread: wake the relist loop on every relevant event; reconnect when the stream
        ends or breaks. Nothing the engine sends ends this thread: only `close`."""
        delay, dropped = RECONNECT_FIRST, False
        while not self._closed.is_set():
            try:
                self._stream = self._client.events(decode=False, filters=EVENT_FILTERS)
            except Exception as e:  # engine restarting or unreachable: retry with backoff
                self._log.warning("Cannot follow Docker events (%s); retrying in %.0f s", e, delay)
            else:
                if self._closed.is_set() or not self._poke(loop):  # (re)connected: relist what was missed
                    self._close_stream()
                    return
                if dropped:
                    self._log.info("Following Docker events again")
                delay = RECONNECT_FIRST
                broke = ""
                try:
                    for line in split_buffer(self._stream):
                        if self._wants_relist(line) and not self._poke(loop):
                            return
                except Exception as e:  # the connection broke in the middle (engine restart, network)
                    broke = f" (it broke: {e})"
                if self._closed.is_set():
                    return
                self._log.warning("The Docker events stream ended; reconnecting in %.0f s%s", delay, broke)
            dropped = True
            self._closed.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    def _wants_relist(self, line: str) -> bool:
        """wants_relist of one line of the stream; a line that is no event is logged, and relisted
        for: whatever it said, the next list shows."""
        if not line.strip():
            return False
        try:
            return wants_relist(parse_event(line))
        except ValueError as e:
            self._log.warning("Skipping a Docker event that cannot be read (%s): %.200r", e, line)
            return True

    def _poke(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Wake the relist loop from the events thread; False once the loop is gone."""
        try:
            loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:
            return False
        return True

    def _close_stream(self) -> None:
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
