"""What a scheduler and kubelets would write about pods, played into the fake API server: NOT a
cluster, and nothing here runs a container.

Each pod created in `FakeApiServer` lives through the steps a real one does, each written the
way Kubernetes writes it (conditions, container statuses, events with their reasons and
messages): placement by nodeSelector and resource requests against the nodes' labels and
allocatable resources (else Unschedulable and a FailedScheduling event), mounting (a hostPath of
type Directory that is not on the node, or a missing ConfigMap: a FailedMount event), the image
(pulled from `registry` unless the node has it: else ErrImagePull then ImagePullBackOff; a
malformed name: InvalidImageName), then running with a pod IP. A pod listed in `exits` stops
right after starting (its output becomes the termination message only with the
FallbackToLogsOnError policy, as on a real kubelet) and goes into CrashLoopBackOff.

Steps follow each other after `step_delay`, or, with `manual=True`, one per `advance()`. Pods
get addresses 10.244.0.x, or all `pod_ip` (e.g. 127.0.0.1, for a test that serves the port).
"""

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from tests.kubernetes.fake_apiserver import FakeApiServer, Obj, now_rfc3339

_IMAGE = re.compile(r"[a-z0-9]+([._/:@-][a-z0-9]+)*(:[\w][\w.-]{0,127})?")


@dataclass
class Node:
    name: str
    labels: dict[str, str]
    allocatable: dict[str, float]
    host_dirs: set[str] = field(default_factory=set)
    images: set[str] = field(default_factory=set)


class PodGone(Exception):
    """The pod was deleted (or replaced): its life ends."""


def quantity(text: str) -> float:
    """A Kubernetes quantity as a number: '1500m' -> 1.5, '2Gi' -> 2**31, '3' -> 3."""
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", text)
    assert match, text
    return float(match.group(1)) * units.get(match.group(2), 1)


class FakeKubelet:
    """Scheduler and kubelets of `nodes`, for every pod the fake API server creates."""

    def __init__(
        self, api: FakeApiServer, nodes: list[Node], registry: set[str], step_delay: float = 0.01, manual: bool = False,
        pod_ip: str | None = None,
    ) -> None:
        self.api = api
        self.nodes = nodes
        self.registry = registry
        self.exits: dict[str, tuple[int, str]] = {}
        self._delay = step_delay
        self._manual = manual
        self._steps = asyncio.Semaphore(0)
        self._next_ip = 10
        self._pod_ip = pod_ip
        self._tasks: set[asyncio.Task[None]] = set()
        api.created.append(self._created)

    def advance(self, steps: int = 1) -> None:
        """Manual mode: let the next `steps` steps happen."""
        for _ in range(steps):
            self._steps.release()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _created(self, obj: Obj) -> None:
        if obj.get("kind") == "Pod":
            meta = obj["metadata"]
            task = asyncio.get_running_loop().create_task(self._life(meta["namespace"], meta["name"], meta["uid"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pause(self) -> None:
        if self._manual:
            await self._steps.acquire()
        else:
            await asyncio.sleep(self._delay)

    def _pod(self, ns: str, name: str, uid: str) -> Obj:
        pod = self.api.get("pods", ns, name)
        if pod is None or pod["metadata"]["uid"] != uid or pod["metadata"].get("deletionTimestamp"):
            raise PodGone(name)
        return pod

    def _container_status(self, pod: Obj, **state: Any) -> None:
        container = pod["spec"]["containers"][0]
        previous = (pod["status"].get("containerStatuses") or [{}])[0]
        pod["status"]["containerStatuses"] = [{
            "name": container["name"], "image": container["image"], "imageID": "", "ready": "running" in state,
            "restartCount": previous.get("restartCount", 0), "started": "running" in state,
            "state": state, "lastState": previous.get("lastState", {}),
        }]

    async def _life(self, ns: str, name: str, uid: str) -> None:
        try:
            await self._pause()
            node = await self._schedule(self._pod(ns, name, uid))
            if node is None:
                return
            await self._pause()
            if not await self._mount(self._pod(ns, name, uid), node):
                return
            await self._pause()
            if not await self._pull(ns, name, uid, node):
                return
            await self._pause()
            pod = self._pod(ns, name, uid)
            for reason, message in (("Created", "Created container: notebook"), ("Started", "Started container notebook")):
                self.api.add_event(pod, reason, message)
            self._next_ip += 1
            ip = self._pod_ip or f"10.244.0.{self._next_ip}"
            pod["status"].update(phase="Running", podIP=ip, podIPs=[{"ip": ip}])
            pod["status"]["conditions"].append({"type": "Ready", "status": "True"})
            self._container_status(pod, running={"startedAt": now_rfc3339()})
            self.api.put("pods", pod)
            if name in self.exits:
                await self._pause()
                self._crash(self._pod(ns, name, uid), *self.exits[name])
        except PodGone:
            pass

    async def _schedule(self, pod: Obj) -> Node | None:
        spec = pod["spec"]
        wanted = spec.get("nodeSelector") or {}
        requests = {k: quantity(v) for k, v in (spec["containers"][0].get("resources", {}).get("requests") or {}).items()}
        reasons: list[str] = []
        for node in self.nodes:
            if any(node.labels.get(k) != v for k, v in wanted.items()):
                reasons.append("node(s) didn't match Pod's node affinity/selector")
            elif short := [k for k, v in requests.items() if v > node.allocatable.get(k, 0)]:
                reasons.append(f"Insufficient {short[0]}")
            else:
                pod["spec"]["nodeName"] = node.name
                pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}]
                self.api.put("pods", pod)
                self.api.add_event(
                    pod,
                    "Scheduled",
                    f"Successfully assigned {pod['metadata']['namespace']}/{pod['metadata']['name']} to {node.name}",
                    component="default-scheduler",
                )
                return node
        counted = ", ".join(f"{reasons.count(r)} {r}" for r in sorted(set(reasons)))
        message = (f"0/{len(self.nodes)} nodes are available: {counted}. preemption: 0/{len(self.nodes)} nodes are available: "
                   f"{len(self.nodes)} Preemption is not helpful for scheduling.")
        pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]
        self.api.put("pods", pod)
        self.api.add_event(pod, "FailedScheduling", message, "Warning", component="default-scheduler")
        return None

    async def _mount(self, pod: Obj, node: Node) -> bool:
        self._container_status(pod, waiting={"reason": "ContainerCreating"})
        self.api.put("pods", pod)
        for volume in pod["spec"].get("volumes") or []:
            host, config_map = volume.get("hostPath"), volume.get("configMap")
            if host and host.get("type") == "Directory" and host["path"] not in node.host_dirs:
                problem = f"hostPath type check failed: {host['path']} is not a directory"
            elif config_map and self.api.get("configmaps", pod["metadata"]["namespace"], config_map["name"]) is None:
                problem = f'configmap "{config_map["name"]}" not found'
            else:
                continue
            self.api.add_event(pod, "FailedMount", f'MountVolume.SetUp failed for volume "{volume["name"]}" : {problem}', "Warning")
            return False
        return True

    async def _pull(self, ns: str, name: str, uid: str, node: Node) -> bool:
        pod = self._pod(ns, name, uid)
        image = pod["spec"]["containers"][0]["image"]
        if not _IMAGE.fullmatch(image) and not image.startswith("sha256:"):
            message = f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": invalid reference format'
            self._container_status(pod, waiting={"reason": "InvalidImageName", "message": message})
            self.api.put("pods", pod)
            self.api.add_event(pod, "InspectFailed", f'Failed to apply default image tag "{image}": invalid reference format', "Warning")
            return False
        if image in node.images:
            self.api.add_event(pod, "Pulled", f'Container image "{image}" already present on machine')
            return True
        self.api.add_event(pod, "Pulling", f'Pulling image "{image}"')
        await self._pause()
        pod = self._pod(ns, name, uid)
        if image in self.registry:
            node.images.add(image)
            self.api.add_event(pod, "Pulled", f'Successfully pulled image "{image}" in 1.2s')
            return True
        error = f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": not found'
        self._container_status(pod, waiting={"reason": "ErrImagePull", "message": error})
        self.api.put("pods", pod)
        self.api.add_event(pod, "Failed", f'Failed to pull image "{image}": {error}', "Warning")
        await self._pause()
        pod = self._pod(ns, name, uid)
        self._container_status(pod, waiting={"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'})
        self.api.put("pods", pod)
        return False

    def _crash(self, pod: Obj, code: int, output: str) -> None:
        container = pod["spec"]["containers"][0]
        logs_as_message = container.get("terminationMessagePolicy") == "FallbackToLogsOnError" and code != 0
        terminated = {"exitCode": code, "reason": "Error" if code else "Completed", "startedAt": now_rfc3339(),
                      "finishedAt": now_rfc3339(), "message": output if logs_as_message else ""}
        restarts = pod["status"]["containerStatuses"][0]["restartCount"] + 1
        message = f"back-off 10s restarting failed container={container['name']} pod={pod['metadata']['name']}"
        self._container_status(pod, waiting={"reason": "CrashLoopBackOff", "message": message})
        pod["status"]["containerStatuses"][0].update(restartCount=restarts, lastState={"terminated": terminated})
        pod["status"]["conditions"] = [c for c in pod["status"]["conditions"] if c["type"] != "Ready"]
        self.api.put("pods", pod)
        self.api.add_event(pod, "BackOff", "Back-off restarting failed container notebook", "Warning")
