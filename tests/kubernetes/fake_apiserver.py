"""A fake Kubernetes API server for tests: NOT a cluster, and nothing here runs a container.

A small aiohttp app on 127.0.0.1 that speaks the Kubernetes REST API (core/v1 JSON) for the four
kinds Jovial uses: pods, services, configmaps and events. It does what the real API server does
for them: create (201, or 409 AlreadyExists), get and delete (404 NotFound; a delete whose uid
precondition is not the object's: 409 Conflict), list with labelSelector and fieldSelector
(equality terms), and watch streams from a resourceVersion
(the history after it, then live changes; ADDED/MODIFIED/DELETED and BOOKMARK lines; an ERROR
event with code 410 Gone for a resourceVersion older than the last compaction; the stream ends
after timeoutSeconds). Deleting a pod is graceful: it gets a deletionTimestamp first and goes a
moment later, as when a kubelet stops it.

What a scheduler and kubelet would write into pods (nodes, statuses, events) is done by
`fake_kubelet.py` through `put`/`add_event`. Tests can also break things: `compact()` expires
every resourceVersion so far (open watches get 410), `drop_watches()` cuts open watch connections,
`send_raw()` writes a line of its own into the open watches of a kind (an event no API server sends),
`fail_next()` makes the next matching request fail with a status, and `calls` counts requests.
"""

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

KINDS = {"pods": "Pod", "services": "Service", "configmaps": "ConfigMap", "events": "Event"}
Obj = dict[str, Any]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}
    return web.json_response(body, status=code)


def _field(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part, {}) if isinstance(value, Mapping) else {}
    return "" if value == {} else str(value)


def matcher(label_selector: str, field_selector: str) -> Callable[[Obj], bool]:
    """Equality-based selectors (k=v, k==v, k!=v, k, !k for labels; a.b=v, a.b!=v for fields)."""
    def terms(text: str) -> list[str]:
        return [t.strip() for t in text.split(",") if t.strip()]

    def label_ok(obj: Obj, term: str) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        if "!=" in term:
            key, value = term.split("!=", 1)
            return labels.get(key) != value
        if "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            return labels.get(key) == value
        if term.startswith("!"):
            return term[1:] not in labels
        if any(c in term for c in " ()"):
            raise ValueError(f"unsupported label selector term {term!r}")
        return term in labels

    def field_ok(obj: Obj, term: str) -> bool:
        if "!=" in term:
            path, value = term.split("!=", 1)
            return _field(obj, path) != value
        path, value = term.replace("==", "=").split("=", 1)
        return _field(obj, path) == value

    labels, fields = terms(label_selector), terms(field_selector)
    return lambda obj: all(label_ok(obj, t) for t in labels) and all(field_ok(obj, t) for t in fields)


class FakeApiServer:
    """The store, the watch fan-out and the HTTP face (see the module docstring)."""

    def __init__(self, pod_deletion_delay: float = 0.05) -> None:
        self.objects: dict[str, dict[tuple[str, str], Obj]] = {kind: {} for kind in KINDS}
        self.history: list[tuple[int, str, str, Obj]] = []
        self.resource_version = 100
        self.compacted = 0
        self.calls: Counter[str] = Counter()
        self.deletions: list[tuple[str, str, Obj]] = []  # (kind, name, the DeleteOptions body) of each DELETE
        self.pod_deletion_delay = pod_deletion_delay
        self.created: list[Callable[[Obj], None]] = []
        self._failures: list[tuple[str, str, int, str]] = []
        self._live: set[asyncio.Queue[tuple[int, str, str, Obj] | None]] = set()
        self._watch_requests: dict[int, web.Request] = {}
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    # --- life ---------------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/v1/namespaces/{ns}/{kind}", self._collection)
        app.router.add_route("*", "/api/v1/namespaces/{ns}/{kind}/{name}", self._item)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        for queue in list(self._live):
            queue.put_nowait(None)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner:
            await self._runner.cleanup()

    # --- what tests and the fake kubelet use ---------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.objects[kind].get((namespace, name))

    def put(self, kind: str, obj: Obj) -> Obj:
        """Store a changed object (a new resourceVersion) and tell the watches: MODIFIED or ADDED."""
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        change = "MODIFIED" if key in self.objects[kind] else "ADDED"
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        self._record(kind, change, obj)
        self.objects[kind][key] = obj
        return obj

    def remove(self, kind: str, namespace: str, name: str) -> None:
        obj = self.objects[kind].pop((namespace, name), None)
        if obj is not None:
            self._record(kind, "DELETED", obj)

    def add_event(self, pod: Obj, reason: str, message: str, kind: str = "Normal", component: str = "kubelet") -> Obj:
        meta = pod["metadata"]
        stamp = now_rfc3339()
        return self.put("events", {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "involvedObject": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
                               "apiVersion": "v1", "fieldPath": "spec.containers{notebook}"},
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": component},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        })

    def compact(self) -> None:
        """Expire every resourceVersion so far: watches from them (open or new) get 410 Gone."""
        self.compacted = self.resource_version
        self.history.clear()
        for queue in list(self._live):
            queue.put_nowait((0, "", "EXPIRED", {}))

    def send_raw(self, kind: str, line: bytes) -> None:
        """Write `line` (and a newline) into every open watch of `kind`, as it is."""
        for queue in list(self._live):
            queue.put_nowait((0, kind, "RAW", {"line": line}))

    def drop_watches(self) -> None:
        """Cut every open watch connection, as a restarting API server or a broken network does."""
        for request in list(self._watch_requests.values()):
            if request.transport is not None:
                request.transport.close()

    def fail_next(self, method: str, kind: str, code: int, message: str) -> None:
        self._failures.append((method, kind, code, message))

    def open_watches(self) -> int:
        return len(self._live)

    # --- internals --------------------------------------------------------------------------------
    def _record(self, kind: str, change: str, obj: Obj) -> None:
        self.resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self.resource_version)
        entry = (self.resource_version, kind, change, json.loads(json.dumps(obj)))
        self.history.append(entry)
        for queue in list(self._live):
            queue.put_nowait(entry)

    def _injected(self, method: str, kind: str) -> web.Response | None:
        for failure in self._failures:
            if failure[:2] == (method, kind):
                self._failures.remove(failure)
                return status(failure[2], "Injected", failure[3])
        return None

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        ns, kind = request.match_info["ns"], request.match_info["kind"]
        if kind not in KINDS:
            return status(404, "NotFound", f"the server could not find the requested resource ({kind})")
        watching = request.query.get("watch", "").lower() in ("true", "1")
        self.calls[f"{request.method} {kind}{' watch' if watching else ''}"] += 1
        injected = self._injected(request.method, kind)
        if injected:
            return injected
        try:
            selected = matcher(request.query.get("labelSelector", ""), request.query.get("fieldSelector", ""))
        except ValueError as e:
            return status(400, "BadRequest", str(e))
        if request.method == "POST":
            return self._create(ns, kind, await request.json())
        if request.method != "GET":
            return status(405, "MethodNotAllowed", f"{request.method} is not allowed on {kind}")
        if watching:
            return await self._watch(request, ns, kind, selected)
        items = [o for (o_ns, _), o in self.objects[kind].items() if o_ns == ns and selected(o)]
        return web.json_response({
            "kind": f"{KINDS[kind]}List", "apiVersion": "v1",
            "metadata": {"resourceVersion": str(self.resource_version)}, "items": items,
        })

    def _create(self, ns: str, kind: str, body: Obj) -> web.Response:
        meta = body.get("metadata") or {}
        if body.get("kind") != KINDS[kind] or not meta.get("name"):
            return status(400, "BadRequest", f"expected a {KINDS[kind]} with a name")
        if meta.setdefault("namespace", ns) != ns:
            return status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
        if (ns, meta["name"]) in self.objects[kind]:
            return status(409, "AlreadyExists", f'{kind} "{meta["name"]}" already exists')
        if kind == "pods":
            body["status"] = {"phase": "Pending", "qosClass": "Burstable"}
        obj = self.put(kind, body)
        for callback in self.created:
            callback(obj)
        return web.json_response(obj, status=201)

    async def _item(self, request: web.Request) -> web.Response:
        ns, kind, name = request.match_info["ns"], request.match_info["kind"], request.match_info["name"]
        self.calls[f"{request.method} {kind} item"] += 1
        injected = self._injected(request.method, kind)
        if injected:
            return injected
        obj = self.objects.get(kind, {}).get((ns, name))
        if obj is None:
            return status(404, "NotFound", f'{kind} "{name}" not found')
        if request.method == "GET":
            return web.json_response(obj)
        if request.method != "DELETE":
            return status(405, "MethodNotAllowed", f"{request.method} is not allowed on {kind}/{name}")
        self.deletions.append((kind, name, await request.json() if request.can_read_body else {}))
        precondition = ((self.deletions[-1][2] or {}).get("preconditions") or {}).get("uid")
        if precondition and precondition != obj["metadata"]["uid"]:
            return status(
                409, "Conflict", f"Precondition failed: UID in precondition: {precondition}, UID in object meta: {obj['metadata']['uid']}"
            )
        if kind == "pods" and self.pod_deletion_delay > 0:
            if not obj["metadata"].get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                self.put(kind, obj)
                task = asyncio.get_running_loop().create_task(self._finish_deletion(ns, name, obj["metadata"]["uid"]))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return web.json_response(obj)
        self.remove(kind, ns, name)
        if kind == "configmaps":
            return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
        return web.json_response(obj)

    async def _finish_deletion(self, ns: str, name: str, uid: str) -> None:
        await asyncio.sleep(self.pod_deletion_delay)
        pod = self.get("pods", ns, name)
        if pod is not None and pod["metadata"]["uid"] == uid:
            self.remove("pods", ns, name)

    async def _watch(self, request: web.Request, ns: str, kind: str, selected: Callable[[Obj], bool]) -> web.StreamResponse:
        since = int(request.query.get("resourceVersion") or 0)
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        bookmarks = request.query.get("allowWatchBookmarks", "").lower() in ("true", "1")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)

        async def send(change: str, obj: Obj) -> None:
            await response.write(json.dumps({"type": change, "object": obj}).encode() + b"\n")

        def ours(entry: tuple[int, str, str, Obj]) -> bool:
            rv, entry_kind, _, obj = entry
            return rv > since and entry_kind == kind and obj["metadata"]["namespace"] == ns and selected(obj)

        if since and since < self.compacted:
            await send("ERROR", {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410, "reason": "Expired",
                                 "message": f"too old resource version: {since} ({self.compacted})"})
            return response
        queue: asyncio.Queue[tuple[int, str, str, Obj] | None] = asyncio.Queue()
        self._live.add(queue)
        self._watch_requests[id(request)] = request
        try:
            for entry in [e for e in self.history if ours(e)]:
                await send(entry[2], entry[3])
            async with asyncio.timeout(timeout):
                while (entry := await queue.get()) is not None:
                    if entry[2] == "RAW":
                        if entry[1] == kind:
                            await response.write(entry[3]["line"] + b"\n")
                        continue
                    if entry[2] == "EXPIRED":
                        await send("ERROR", {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                                             "reason": "Expired", "message": "too old resource version"})
                        break
                    if ours(entry):
                        await send(entry[2], entry[3])
                    elif bookmarks and entry[1] == kind:
                        await send("BOOKMARK", {"kind": KINDS[kind], "apiVersion": "v1",
                                                "metadata": {"resourceVersion": str(entry[0])}})
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            self._live.discard(queue)
            self._watch_requests.pop(id(request), None)
        return response
