"""One watcher per hub process: every Jovial pod and the events of pods, kept in memory.

Two feeds, each a list followed by a watch from the list's resourceVersion: pods carrying
`jovial.managed=true`, and the namespace's pod events (scheduling, pulling, mount failures). A
watch the server ends after `timeoutSeconds` is opened again from the last resourceVersion seen
(bookmarks keep it fresh); a watch whose resourceVersion has expired (410 Gone, as an HTTP status
or an ERROR event) and any broken connection lead to a fresh list (a resync), after a backoff when
the API server does not answer. A watch event that cannot be read (not JSON, not an event, an
object it cannot apply) is logged and skipped, and the kind listed again at once: nothing the API
server sends ends a feed. Readers only ever look at `state`: `status()` makes no API call.
The first list of pods is kept: it is what this process found when it started (`first_pods`).

The watcher starts on first use and is bound to the event loop it started on.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio.client import CoreV1Api

from ...spec import MANAGED_LABEL
from .cache import ClusterState

WATCH_SECONDS = 240  # the server ends each watch after this; it is opened again from where it was
READ_MARGIN = 30.0  # seconds of silence past WATCH_SECONDS after which a watch counts as broken
LIST_TIMEOUT = 30.0
RECONNECT_FIRST, RECONNECT_MAX = 0.5, 30.0


class Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class Unreadable(Exception):
    """A watch event that is not one the API server sends: skipped, and the kind listed again."""


def read_watch_event(line: bytes) -> tuple[str, dict[str, Any]]:
    """One line of a watch -> (its type, its object); Unreadable if it is not a watch event."""
    try:
        event = json.loads(line)
    except ValueError as e:
        raise Unreadable(f"not JSON: {e}") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str) or not isinstance(event.get("object"), dict):
        raise Unreadable("not an object with a type and an object")
    if not isinstance(event["object"].get("metadata", {}), dict):
        raise Unreadable("its object's metadata is not an object")
    return event["type"], event["object"]


class ApiError(Exception):
    """The API server answered a list or watch with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Feed:
    """One kind of object the watcher follows: how to list it and what to do with what comes."""

    kind: str
    call: Callable[..., Awaitable[Any]]
    selectors: Mapping[str, str]
    reset: Callable[[list[dict[str, Any]], float], None]
    apply: Callable[[str, dict[str, Any], float], None]


async def _answer(response: aiohttp.ClientResponse) -> None:
    """Raise for an error status (Expired for 410), with the API's own message."""
    if response.status < 300:
        return
    try:
        message = (await response.json(content_type=None)).get("message", "")
    except (ValueError, aiohttp.ClientError):
        message = response.reason or ""
    response.release()
    if response.status == 410:
        raise Expired(message)
    raise ApiError(response.status, message)


class KubernetesWatcher:
    """Follows every Jovial pod and the events of pods in one namespace (see the module docstring)."""

    def __init__(self, api: CoreV1Api, namespace: str, log: logging.Logger) -> None:
        self._namespace = namespace
        self._log = log
        self.state = ClusterState()
        self._feeds = (
            Feed("pods", api.list_namespaced_pod, {"label_selector": f"{MANAGED_LABEL}=true"},
                 self.state.reset_pods, self.state.apply_pod),
            Feed("events", api.list_namespaced_event, {"field_selector": "involvedObject.kind=Pod"},
                 self.state.reset_events, self.state.apply_event),
        )
        self._version = 0
        self._changed = asyncio.Event()
        self._pods_listed = asyncio.Event()
        self._first_pods: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def listed(self, timeout: float | None) -> bool:
        """Whether the pods have been listed at least once (waiting up to `timeout` seconds)."""
        self._start()
        try:
            async with asyncio.timeout(timeout):
                await self._pods_listed.wait()
        except TimeoutError:
            return False
        return True

    async def first_pods(self) -> list[dict[str, Any]]:
        """The pods of this process's first list (waiting for it): what was there when it began."""
        await self.listed(None)
        return self._first_pods

    async def changed_after(self, version: int, timeout: float | None) -> int | None:
        """The state's version once it is newer than `version`; None after `timeout` seconds (None: no limit)."""
        self._start()
        try:
            async with asyncio.timeout(None if timeout is None else max(0.0, timeout)):
                while self._version <= version:
                    await self._changed.wait()
        except TimeoutError:
            return None
        return self._version

    async def close(self) -> None:
        """Stop following (a hub keeps its watcher for its whole life; tests don't)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.get_running_loop().create_task(self._follow(feed)) for feed in self._feeds]

    def _bump(self) -> None:
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def _follow(self, feed: Feed) -> None:
        delay, failing = RECONNECT_FIRST, False
        while True:
            try:
                version = await self._list(feed)
                if failing:
                    self._log.info("Following Kubernetes %s again", feed.kind)
                delay, failing = RECONNECT_FIRST, False
                while True:  # each watch ends after WATCH_SECONDS; go on from where it ended
                    version = await self._watch(feed, version)
            except Expired:
                self._log.info("The watch of Kubernetes %s expired; listing them again", feed.kind)
            except Unreadable as e:
                self._log.warning("Skipping a Kubernetes %s watch event that cannot be read (%s); listing them again", feed.kind, e)
            except (ApiError, aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
                if not failing:
                    self._log.warning("Following Kubernetes %s failed (%s); listing again in %.1f s", feed.kind, e, delay)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)

    async def _list(self, feed: Feed) -> str:
        response = await feed.call(self._namespace, **feed.selectors, _preload_content=False, _request_timeout=LIST_TIMEOUT)
        await _answer(response)
        body = await response.json(content_type=None)
        feed.reset(body.get("items") or [], asyncio.get_running_loop().time())
        if feed.kind == "pods" and not self._pods_listed.is_set():
            self._first_pods = body.get("items") or []
            self._pods_listed.set()
        self._bump()
        resource_version: str = body["metadata"]["resourceVersion"]
        return resource_version

    async def _watch(self, feed: Feed, version: str) -> str:
        """Follow one watch from `version` until the server ends it; the last resourceVersion seen."""
        response = await feed.call(
            self._namespace,
            **feed.selectors,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(sock_connect=LIST_TIMEOUT, sock_read=WATCH_SECONDS + READ_MARGIN),
        )
        try:
            await _answer(response)
            async for line in response.content:
                if line.strip():
                    version = self._take(feed, *read_watch_event(line), version)
        finally:
            response.release()
        return version

    def _take(self, feed: Feed, change: str, obj: dict[str, Any], version: str) -> str:
        """Apply one watch event; the resourceVersion to go on from."""
        if change == "ERROR":
            if obj.get("code") == 410:
                raise Expired(obj.get("message", ""))
            raise ApiError(obj.get("code", 500), obj.get("message", ""))
        if change in ("ADDED", "MODIFIED", "DELETED"):
            try:
                feed.apply(change, obj, asyncio.get_running_loop().time())
            except (KeyError, TypeError, AttributeError) as e:  # an object without the parts every one has
                raise Unreadable(f"its {feed.kind[:-1]} cannot be applied: {e!r}") from None
            self._bump()
        return obj.get("metadata", {}).get("resourceVersion") or version
