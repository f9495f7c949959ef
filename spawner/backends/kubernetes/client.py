"""The Kubernetes backend's I/O: create, wait for, inspect and remove the objects of a user server.

Every server is a ConfigMap (its passwd and group), a headless Service and a Pod, all named after
the server and labelled `jovial.object=<name>`. `launch` creates all three or none; `remove`
deletes all three, quietly for any already gone, and waits until the pod is gone so that its
name is free again. Waiting and status come from the process's one `KubernetesWatcher`, so
`status` makes no API call at all.
"""

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api

from ...errors import LaunchError
from ...spec import ServerSpec
from .. import ProgressReport, ServerStatus
from ..follow import Followers, StatusChanged
from ..probe import RUNNING_GRACE, Probe, probe_interval
from .builder import STOP_GRACE_SECONDS, config_map_name, manifests
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
    return ApiClient(configuration), current.get("context", {}).get("namespace") or "default"


class Refused(Exception):
    """The API server answered with an error status; `message` is its own explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _call(method: Callable[..., Awaitable[ClientResponse]], *args: object) -> dict[str, Any]:
    """One API call, its answer as the API's JSON (not deserialised into the client's models,
    which would reject fields newer than the client); Refused for an error status."""
    response = await method(*args, _preload_content=False, _request_timeout=CALL_TIMEOUT)
    try:
        body = await response.json(content_type=None) if response.content_length != 0 else {}
    except ValueError:
        body = {}
    finally:
        response.release()
    if response.status >= 300:
        raise Refused(response.status, (body or {}).get("message") or response.reason or f"HTTP {response.status}")
    return body


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
        self.namespace = namespace
        self.watcher = KubernetesWatcher(self.api, namespace, log)
        self._followers = Followers(self._next_change, self.status, log)
        self._log = log
        self._extended_resources = dict(extended_resources)
        self._probe = probe
        self._uids: dict[str, str] = {}

    async def launch(self, spec: ServerSpec) -> str:
        objects = manifests(spec, self.namespace, self._extended_resources)
        steps = (
            ("ConfigMap", self.api.create_namespaced_config_map, objects.config_map, self._delete_config_map),
            ("Service", self.api.create_namespaced_service, objects.service, self._delete_service),
            ("Pod", self.api.create_namespaced_pod, objects.pod, self._delete_pod),
        )
        made: list[Callable[[str], Awaitable[None]]] = []
        try:
            for kind, create, body, delete in steps:
                try:
                    created = await _call(create, self.namespace, body)
                except Refused as e:
                    raise LaunchError(f"The cluster refused to create your server's {kind}: {e.message}") from None
                made.append(delete)
        except BaseException:
            for delete in reversed(made):
                await asyncio.shield(self._undo(delete, spec.name))
            raise
        self._uids[spec.name] = created["metadata"]["uid"]
        return created["metadata"]["uid"]

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
                if view.address and self._probe is None and loop.time() - running_since >= RUNNING_GRACE:
                    return view.address, spec.port
            elif seen:
                raise LaunchError("Your server's pod was removed while it was starting.")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LaunchError(f"Your server did not start within {timeout:.0f} seconds; last step: {last_message or 'none'}.")
            wait = min(remaining, probe_interval(loop.time() - running_since)) if running_since is not None else remaining
            version = await self.watcher.changed_after(version, wait) or version

    async def status(self, name: str) -> ServerStatus:
        if not await self.watcher.listed(FIRST_LIST_TIMEOUT):  # never let the hub stop servers for that
            return ServerStatus(alive=True, reason="not listed yet: the Kubernetes API has not answered")
        pod = self.watcher.state.pods.get(name)
        if pod is None:
            return ServerStatus(alive=False, reason=POD_GONE)
        return pod_status(pod)

    async def remove(self, name: str) -> None:
        await self._delete_pod(name)
        await self._delete_service(name)
        await self._delete_config_map(name)
        self._uids.pop(name, None)
        loop = asyncio.get_running_loop()
        deadline, version = loop.time() + REMOVE_WAIT, 0
        if not await self.watcher.listed(FIRST_LIST_TIMEOUT):
            return
        while name in self.watcher.state.pods:
            changed = await self.watcher.changed_after(version, deadline - loop.time())
            if changed is None:
                self._log.warning("The pod %s is still there %.0f s after it was deleted", name, REMOVE_WAIT)
                return
            version = changed

    def follow(self, name: str, callback: StatusChanged) -> None:
        self._followers.follow(name, callback)

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
        await self.api.api_client.close()

    async def _undo(self, delete: Callable[[str], Awaitable[None]], name: str) -> None:
        """Delete what a failed launch made; a problem doing so is logged, not raised over the launch's error."""
        try:
            await delete(name)
        except Exception:
            self._log.exception("Could not remove an object of the failed launch of %s", name)

    async def _delete_quietly(self, kind: str, delete: Callable[..., Awaitable[ClientResponse]], name: str) -> None:
        try:
            await _call(delete, name, self.namespace)
        except Refused as e:
            if e.status != 404:
                raise LaunchError(f"The cluster refused to delete the {kind} {name}: {e.message}") from None

    async def _delete_pod(self, name: str) -> None:
        await self._delete_quietly("Pod", self.api.delete_namespaced_pod, name)

    async def _delete_service(self, name: str) -> None:
        await self._delete_quietly("Service", self.api.delete_namespaced_service, name)

    async def _delete_config_map(self, name: str) -> None:
        await self._delete_quietly("ConfigMap", self.api.delete_namespaced_config_map, config_map_name(name))
