"""The Kubernetes backend's I/O: create, wait for, inspect and remove the objects of a user server.

Every server is a ConfigMap (its passwd and group), a headless Service and a Pod, all named after
the server and labelled `jovial.object=<name>` and with its owner (`jovial.user`, `jovial.server`).
`launch` creates all three or none; `remove` reads each of the three, deletes those that are
Jovial's for that owner (exactly the object read: a uid precondition), quietly for any already
gone, leaves any other alone (`ownership.py`), and waits until the pod is gone so that its name is
free again. Waiting and status come from the process's one `KubernetesWatcher`, so `status` makes
no API call at all.
"""

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api

from ...errors import LaunchError, NameTaken
from ...spec import ServerOwner, ServerSpec
from .. import ListedServer, ProgressReport, ServerStatus
from ..follow import Followers, StatusChanged
from ..ownership import NameLocks, left_alone, owner_of, why_not_owned
from ..probe import RUNNING_GRACE, Probe, probe_interval
from .builder import STOP_GRACE_SECONDS, Manifest, Manifests, config_map_name, manifests, server_labels
from .pods import pod_status, view_pod
from .watcher import KubernetesWatcher

FIRST_LIST_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0
REMOVE_WAIT = STOP_GRACE_SECONDS + 20.0  # seconds remove() waits for the pod to be gone
POD_GONE = "Your server's pod was removed from the cluster (not by the hub)."
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


async def connect() -> tuple[ApiClient, str]:
    """An API client and the namespace of the hub: its service account's inside a cluster,
    else $KUBECONFIG's (or ~/.kube/config's) current context, else 'default'."""
    configuration = Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)
        return ApiClient(configuration), SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    await config.load_kube_config(config_file=path, client_configuration=configuration)
    _, current = config.list_kube_config_contexts(config_file=path)
    assert current is not None  # load_kube_config found the current context, or raised
    return ApiClient(configuration), current.get("context", {}).get("namespace") or "default"


class Refused(Exception):
    """The API server answered with an error status; `message` is its own explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# The client's API methods, called with _preload_content=False: then they return the aiohttp
# ClientResponse, which their types (the deserialised model) do not say.
ApiCall = Callable[..., Awaitable[Any]]


async def _call(method: ApiCall, *args: object, **kwargs: object) -> dict[str, Any]:
    """One API call, its answer as the API's JSON (not deserialised into the client's models,
    which would reject fields newer than the client); Refused for an error status."""
    response: ClientResponse = await method(*args, **kwargs, _preload_content=False, _request_timeout=CALL_TIMEOUT)
    try:
        body = await response.json(content_type=None) if response.content_length != 0 else {}
    except ValueError:
        body = {}
    finally:
        response.release()
    if response.status >= 300:
        raise Refused(response.status, (body or {}).get("message") or response.reason or f"HTTP {response.status}")
    return body


@dataclass(frozen=True)
class _Kind:
    """One of the kinds of object made for every server: its name for people, the name of the
    server's object of that kind, its manifest, and the API calls for it."""

    kind: str
    object_name: Callable[[str], str]
    manifest: Callable[[Manifests], Manifest]
    create: ApiCall
    read: ApiCall
    delete: ApiCall


def _same(name: str) -> str:
    return name


class KubernetesBackend:
    """Runs each user server as one Pod (plus its ConfigMap and headless Service) in `namespace`,
    through `api_client`, which it owns (and closes).

    `extended_resources`: Kubernetes names of the spec's node resources ({'NVIDIA-GPU': 'nvidia.com/gpu'}).
    `probe`: how to tell that a running server answers (a hub in the cluster passes `port_answers`);
    without one, a server counts as started after RUNNING_GRACE seconds of running.
    """

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        log: logging.Logger,
        extended_resources: Mapping[str, str],
        probe: Probe | None = None,
    ) -> None:
        self.api = CoreV1Api(api_client)
        self._api_client = api_client
        self.namespace = namespace
        self.watcher = KubernetesWatcher(self.api, namespace, log)
        self._followers = Followers(self._next_change, self.status, log)
        self._log = log
        self._extended_resources = dict(extended_resources)
        self._probe = probe
        self._uids: dict[str, str] = {}
        self._names = NameLocks()
        api = self.api
        self._kinds = (  # in the order they are made: the pod last, once what it mounts exists
            _Kind("ConfigMap", config_map_name, lambda m: m.config_map, api.create_namespaced_config_map,
                  api.read_namespaced_config_map, api.delete_namespaced_config_map),
            _Kind("Service", _same, lambda m: m.service, api.create_namespaced_service,
                  api.read_namespaced_service, api.delete_namespaced_service),
            _Kind("Pod", _same, lambda m: m.pod, api.create_namespaced_pod, api.read_namespaced_pod, api.delete_namespaced_pod),
        )

    async def launch(self, spec: ServerSpec) -> str:
        async with self._names.held(spec.name):
            return await self._launch(spec)

    async def _launch(self, spec: ServerSpec) -> str:
        objects = manifests(spec, self.namespace, self._extended_resources)
        made: list[tuple[_Kind, str]] = []  # each object made, with its uid
        try:
            for kind in self._kinds:
                try:
                    created = await _call(kind.create, self.namespace, kind.manifest(objects))
                except Refused as e:
                    raise LaunchError(f"The cluster refused to create your server's {kind.kind}: {e.message}") from None
                made.append((kind, created["metadata"]["uid"]))
        except BaseException:
            for kind, uid in reversed(made):
                await asyncio.shield(self._undo(kind, spec.name, uid))
            raise
        pod_uid: str = created["metadata"]["uid"]  # the pod is made last
        self._uids[spec.name] = pod_uid
        return pod_uid

    async def wait_running(self, spec: ServerSpec, report: ProgressReport, timeout: float) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        uid = self._uids.get(spec.name)
        last_message, seen, version = "", False, 0
        running_since: float | None = None
        while True:
            pod = self.watcher.state.pods.get(spec.name)
            if pod is not None and uid in (None, pod["metadata"].get("uid")):
                seen = True
                view = view_pod(pod, self.watcher.state.events_of(pod["metadata"]["uid"]), spec.image)
                if view.failure:
                    raise LaunchError(view.failure)
                if view.message != last_message:
                    report(view.message, view.percent)
                    last_message = view.message
                running_since = (running_since or loop.time()) if view.address else None
                if view.address and self._probe is not None and await self._probe(view.address, spec.port):
                    report("Your server answers", 95)
                    return view.address, spec.port
                if view.address and running_since is not None and self._probe is None and loop.time() - running_since >= RUNNING_GRACE:
                    return view.address, spec.port
            elif seen:
                raise LaunchError("Your server's pod was removed while it was starting.")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LaunchError(f"Your server did not start within {timeout:.0f} seconds; last step: {last_message or 'none'}.")
            wait = min(remaining, probe_interval(loop.time() - running_since)) if running_since is not None else remaining
            version = await self.watcher.changed_after(version, wait) or version

    async def status(self, name: str, owner: ServerOwner) -> ServerStatus:
        if not await self.watcher.listed(FIRST_LIST_TIMEOUT):  # never let the hub stop servers for that
            return ServerStatus(alive=True, reason="not listed yet: the Kubernetes API has not answered")
        pod = self.watcher.state.pods.get(name)
        if pod is None:
            return ServerStatus(alive=False, reason=POD_GONE)
        if why_not_owned(server_labels(pod["metadata"]), owner):
            return ServerStatus(alive=False, reason=NameTaken("Pod", name).jupyterhub_message)
        return pod_status(pod)

    async def remove(self, name: str, owner: ServerOwner) -> None:
        async with self._names.held(name):
            taken: list[NameTaken] = []
            pod_uid = None
            for kind in reversed(self._kinds):  # the pod first: nothing runs while its files go
                object_name = kind.object_name(name)
                found = await self._read(kind, object_name)
                if found is None:
                    continue
                why = why_not_owned(server_labels(found["metadata"]), owner)
                if why:
                    taken.append(left_alone(self._log, kind.kind, object_name, owner, why))
                    continue
                await self._delete(kind, object_name, found["metadata"]["uid"])
                if kind.kind == "Pod":
                    pod_uid = found["metadata"]["uid"]
            self._uids.pop(name, None)
            if pod_uid is not None:
                await self._until_gone(name, pod_uid)
        if taken:
            raise taken[0]

    async def _until_gone(self, name: str, uid: str) -> None:
        """Wait (up to REMOVE_WAIT) until the watcher no longer sees the pod `name` with `uid`."""
        loop = asyncio.get_running_loop()
        deadline, version = loop.time() + REMOVE_WAIT, 0
        if not await self.watcher.listed(FIRST_LIST_TIMEOUT):
            return
        while self.watcher.state.pods.get(name, {}).get("metadata", {}).get("uid") == uid:
            changed = await self.watcher.changed_after(version, deadline - loop.time())
            if changed is None:
                self._log.warning("The pod %s is still there %.0f s after it was deleted", name, REMOVE_WAIT)
                return
            version = changed

    async def first_listed(self) -> list[ListedServer]:
        pods = await self.watcher.first_pods()
        owners = {p["metadata"]["name"]: owner_of(server_labels(p["metadata"])) for p in pods}
        return [ListedServer(name, owner) for name, owner in owners.items() if owner is not None]

    def follow(self, name: str, owner: ServerOwner, callback: StatusChanged) -> None:
        self._followers.follow(name, owner, callback)

    def unfollow(self, name: str) -> None:
        self._followers.unfollow(name)

    async def _next_change(self, after: int) -> int:
        changed = await self.watcher.changed_after(after, None)
        assert changed is not None  # no timeout: it waits for one
        return changed

    async def close(self) -> None:
        """Stop the watcher and close the API client, which the backend owns (a hub keeps its
        backend for its whole life; tests make several)."""
        await self._followers.close()
        await self.watcher.close()
        await self._api_client.close()

    async def _undo(self, kind: _Kind, name: str, uid: str) -> None:
        """Delete what a failed launch made; a problem doing so is logged, not raised over the launch's error."""
        try:
            await self._delete(kind, kind.object_name(name), uid)
        except Exception:
            self._log.exception("Could not remove an object of the failed launch of %s", name)

    async def _read(self, kind: _Kind, object_name: str) -> dict[str, Any] | None:
        """The object as the API server has it now; None if there is none."""
        try:
            return await _call(kind.read, object_name, self.namespace)
        except Refused as e:
            if e.status == 404:
                return None
            raise LaunchError(f"The cluster refused to read the {kind.kind} {object_name}: {e.message}") from None

    async def _delete(self, kind: _Kind, object_name: str, uid: str) -> None:
        """Delete exactly the object with `uid`: quiet if it is gone, or was replaced by another (409)
        since it was read, which is left alone."""
        try:
            await _call(kind.delete, object_name, self.namespace, body={"preconditions": {"uid": uid}})
        except Refused as e:
            if e.status not in (404, 409):
                raise LaunchError(f"The cluster refused to delete the {kind.kind} {object_name}: {e.message}") from None
