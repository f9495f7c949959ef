"""Reading a pod and its events: where a starting server is, in words, whether it can never run,
and whether a running one is still alive and where. Pure: pods and events are the API's JSON.

A pod that can never run fails the start at once, with the cluster's own reason: the scheduler
finds no node (Unschedulable, with its message), the image cannot be pulled (ErrImagePull,
ImagePullBackOff, InvalidImageName), the container cannot be made, a hostPath folder is missing
(a FailedMount event), or the server stops (exit code and its last output, which the container's
FallbackToLogsOnError termination message carries). As on Swarm, any crash fails a start: the
restart would only hide it.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import ServerStatus
from .builder import CONTAINER

Pod = Mapping[str, Any]
Event = Mapping[str, Any]

# Swarm gives up on a server after this many attempts; a pod restarted more often counts as dead.
MAX_RESTARTS = 3
IMAGE_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
CREATE_FAILURES = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
_MISSING_HOST_PATH = re.compile(r"hostPath type check failed: (\S+) is not a directory")

_PLACING = ("Waiting for the cluster to place your server", 35)
_ASSIGNED = ("Your server is assigned to node {node}", 45)
_PULLING = ("Pulling the image of your server on node {node}", 60)
_PULLED = ("Creating your server on node {node} (the image is ready)", 70)
_STARTING = ("Starting your server on node {node}", 75)
_RUNNING = ("Your server is running on node {node}; waiting for it to answer", 85)
_EVENT_STEPS = {"Pulling": _PULLING, "Pulled": _PULLED, "Created": _STARTING, "Started": _STARTING}


@dataclass(frozen=True)
class PodView:
    """What one look at a starting pod says: a step to show, a failure, or an address."""

    message: str
    percent: int
    failure: str | None = None
    address: str | None = None


def _container_status(pod: Pod) -> Mapping[str, Any]:
    status: Mapping[str, Any]
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return status
    return {}


def _condition(pod: Pod, kind: str) -> Mapping[str, Any]:
    return next((c for c in pod.get("status", {}).get("conditions") or [] if c.get("type") == kind), {})


def _stopped(terminated: Mapping[str, Any], while_starting: bool) -> str:
    when = " right after starting" if while_starting else ""
    text = f"Your server stopped{when} (exit code {terminated.get('exitCode', '?')}"
    reason = terminated.get("reason")
    text += f", {reason})." if reason and reason not in ("Error", "Completed") else ")."
    output = (terminated.get("message") or "").strip()
    return text + (f" Its last output:\n{output}" if output else "")


def _words(reason: str | None, message: str | None) -> str:
    """"Reason: message", either part optional."""
    return ": ".join(filter(None, (reason, message))) or "no reason given"


def event_time(event: Event) -> str:
    """When an event last happened (RFC 3339, comparable as text within one API server)."""
    series = event.get("series") or {}
    return (
        series.get("lastObservedTime") or event.get("lastTimestamp") or event.get("eventTime")
        or event.get("metadata", {}).get("creationTimestamp") or ""
    )


def _event_failure(events: Sequence[Event], node: str) -> str | None:
    for event in events:
        if event.get("type") != "Warning":
            continue
        message = event.get("message", "")
        missing = _MISSING_HOST_PATH.search(message)
        if event.get("reason") == "FailedMount" and missing:
            return f"The folder {missing.group(1)} that your server needs is missing on node {node}. ({message})"
        if event.get("reason") == "FailedScheduling":
            return f"No node of the cluster can run your server: {message}"
    return None


def view_pod(pod: Pod, events: Sequence[Event], image: str) -> PodView:
    """Summarise a starting pod and its events (oldest first)."""
    status = pod.get("status", {})
    node = pod.get("spec", {}).get("nodeName") or "?"
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return PodView("", 0, failure="Your server was removed while it was starting.")
    container = _container_status(pod)
    state, last = container.get("state") or {}, container.get("lastState") or {}
    if "terminated" in state or "terminated" in last:
        return PodView("", 0, failure=_stopped(state.get("terminated") or last["terminated"], while_starting=True))
    if status.get("phase") == "Failed":
        reason = _words(status.get("reason"), status.get("message"))
        return PodView("", 0, failure=f"The cluster could not run your server on node {node}: {reason}.")
    waiting = state.get("waiting") or {}
    if waiting.get("reason") in IMAGE_FAILURES:
        return PodView(
            "", 0, failure=f"The image {image} cannot be pulled on node {node}: {_words(waiting['reason'], waiting.get('message'))}"
        )
    if waiting.get("reason") in CREATE_FAILURES:
        return PodView(
            "", 0, failure=f"The cluster could not create your server on node {node}: {_words(waiting['reason'], waiting.get('message'))}"
        )
    scheduled = _condition(pod, "PodScheduled")
    if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return PodView("", 0, failure=f"No node of the cluster can run your server: {scheduled.get('message', 'no reason given')}")
    failure = _event_failure(events, node)
    if failure:
        return PodView("", 0, failure=failure)
    if "running" in state and status.get("podIP"):
        return PodView(_RUNNING[0].format(node=node), _RUNNING[1], address=status["podIP"])
    if node == "?":
        return PodView(*_PLACING)
    steps = [_EVENT_STEPS[e["reason"]] for e in events if e.get("reason") in _EVENT_STEPS]
    message, percent = steps[-1] if steps else _ASSIGNED
    return PodView(message.format(node=node), percent)


def pod_status(pod: Pod) -> ServerStatus:
    """Whether a pod's server is alive (running, starting, or restarted after a crash no more than
    MAX_RESTARTS times), and its address once its container runs."""
    status = pod.get("status", {})
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return ServerStatus(alive=False, reason="Your server's pod is being removed from the cluster.")
    container = _container_status(pod)
    state = container.get("state") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        terminated = state.get("terminated")
        reason = _stopped(terminated, while_starting=False) if terminated else _words(status.get("reason"), status.get("message"))
        return ServerStatus(alive=False, reason=f"{status['phase']}: {reason}")
    if container.get("restartCount", 0) > MAX_RESTARTS and "running" not in state:
        last = (container.get("lastState") or {}).get("terminated") or {}
        return ServerStatus(alive=False, reason=f"restarted {container['restartCount']} times; {_stopped(last, while_starting=False)}")
    address = status.get("podIP") if "running" in state else None
    return ServerStatus(alive=True, address=address or None)
