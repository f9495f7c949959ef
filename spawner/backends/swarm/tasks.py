"""Reading Swarm tasks: where a starting server is, in words, whether it can never run, and
whether a running one is still alive and where. Pure."""

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import ServerStatus
from .builder import NANO

Task = Mapping[str, Any]

# Task states in the order Swarm walks them, with the message and progress a user sees.
_STEPS = {
    "new": ("Waiting for the cluster to place your server", 35),
    "pending": ("Waiting for a node with room for your server", 40),
    "assigned": ("Your server is assigned to node {node}", 45),
    "accepted": ("Node {node} accepted your server", 50),
    "preparing": ("Preparing your server on node {node} (getting the image ready)", 60),
    "ready": ("Your server is ready to start on node {node}", 70),
    "starting": ("Starting your server on node {node}", 75),
    "running": ("Your server is running on node {node}; waiting for it to answer", 85),
}
ALIVE_STATES = frozenset(_STEPS)
FAILED_STATES = frozenset({"failed", "rejected"})
DESIRED_ALIVE = frozenset({"ready", "running"})
NO_NODE = "no suitable node"  # Swarm's words for a task no node can take (constraints, resources)
KILLED_EXIT_CODE = 137  # 128 + SIGKILL: the kernel's OOM killer, or someone's kill -9
REPLACEMENT_GRACE = 15.0  # seconds after a task's end (plus the restart delay) by which Swarm has made its replacement


@dataclass(frozen=True)
class TaskView:
    """What one look at a service's tasks says: a step to show, a failure, or an address."""

    message: str
    percent: int
    failure: str | None = None
    address: str | None = None
    exited: bool = False


def timestamp(text: str) -> float:
    """Docker's RFC 3339 UTC time (up to nine fraction digits) -> seconds since the epoch; 0 if absent."""
    return datetime.fromisoformat(text).timestamp() if text else 0.0


def _created(task: Task) -> float:
    return timestamp(task.get("CreatedAt", ""))


def newest(tasks: Sequence[Task]) -> Task | None:
    """The task that speaks for the service: the newest one Swarm wants running, else the newest.

    Not the highest version index: that grows on every update of a task, so an old task whose
    node comes back (and reports it shut down) would otherwise hide the healthy replacement.
    """
    wanted = [t for t in tasks if t.get("DesiredState") in DESIRED_ALIVE]
    return max(wanted or tasks, key=_created, default=None)


def task_address(task: Task, network: str) -> str | None:
    """The task's IP address on `network` (a name or an ID; without the prefix length), if it has one yet."""
    for attachment in task.get("NetworksAttachments") or []:
        names = {attachment.get("Network", {}).get("Spec", {}).get("Name"), attachment.get("Network", {}).get("ID")}
        if network in names and attachment.get("Addresses"):
            address: str = attachment["Addresses"][0].split("/")[0]
            return address
    return None


def lasting_failure(error: str, node: str, image: str) -> str | None:
    """Swarm's task error -> what went wrong, in words for the user and the operator, if it is a
    failure that trying again cannot mend (None for the others, such as the engine failing to set
    up a container under load, which a new task usually gets past)."""
    missing = re.search(r"bind source path does not exist: (\S+)", error)
    if missing:
        return f"The folder {missing.group(1)} that your server needs is missing on node {node}. ({error})"
    if re.search(r"No such image|pull access denied|manifest unknown|repository does not exist", error, re.I):
        return f"The image {image} is not on node {node} and cannot be downloaded. ({error})"
    exit_code = re.search(r"non-zero exit \((\d+)\)", error)
    if exit_code:
        return f"Your server stopped right after starting (exit code {exit_code.group(1)})."
    if NO_NODE in error:
        return f"No node of the cluster can run your server: {error}."
    return None


def explain_failure(error: str, node: str, image: str) -> str:
    """Swarm's task error -> what went wrong, in words for the user and the operator."""
    return lasting_failure(error, node, image) or f"The cluster could not run your server on node {node}: {error}."


def _error(task: Task) -> str:
    status = task.get("Status", {})
    return status.get("Err") or status.get("Message") or "unknown error"


def view_tasks(
    tasks: Sequence[Task],
    node_names: Mapping[str, str],
    network: str,
    image: str,
    restart_policy: Mapping[str, Any],
    now: float,
) -> TaskView:
    """Summarise a starting service's tasks. A task failure that trying again cannot mend fails
    the start at once (retries would only hide it); any other is left to the retries the
    service's restart policy allows, and fails the start when they are used up."""
    failed = sorted((t for t in tasks if t.get("Status", {}).get("State") in FAILED_STATES), key=_created)
    for failed_task in failed:
        node = node_names.get(failed_task.get("NodeID", ""), "?")
        lasting = lasting_failure(_error(failed_task), node, image)
        if lasting:
            return TaskView("", 0, failure=lasting, exited="exit" in _error(failed_task))
    if failed and newest(tasks) is failed[-1]:
        node = node_names.get(failed[-1].get("NodeID", ""), "?")
        if not restart_coming(failed[-1], tasks, restart_policy, now):
            return TaskView("", 0, failure=explain_failure(_error(failed[-1]), node, image))
        return TaskView(f"Node {node} could not start your server ({_error(failed[-1])}); trying again", 50)
    task = newest(tasks)
    if task is None:
        return TaskView(*_STEPS["new"])
    status = task.get("Status", {})
    state = status.get("State", "new")
    node = node_names.get(task.get("NodeID", ""), "?")
    error = status.get("Err", "")
    if state == "pending" and NO_NODE in error:
        return TaskView("", 0, failure=explain_failure(error, node, image))
    if state not in ALIVE_STATES:
        return TaskView("", 0, failure=f"Your server stopped while starting ({state}: {error or status.get('Message', '')}).")
    message, percent = _STEPS[state]
    address = task_address(task, network) if state == "running" else None
    return TaskView(message.format(node=node), percent, address=address)


def server_status(
    tasks: Sequence[Task],
    networks: Collection[str],
    node_names: Mapping[str, str],
    restart_policy: Mapping[str, Any],
    now: float,
    placement_timeout: float,
) -> ServerStatus:
    """Whether a service's server is alive, judged by its newest task, and its address on `networks`.

    A server on its way again is alive, without an address: Swarm restarting it after a crash or
    a lost node (the new task waits out the restart delay with desired state "ready"), and also
    the moment between the end of a task and its replacement, when the service's
    `restart_policy` says Swarm will start it again (`restart_coming`; `now`: seconds since the
    epoch). One that ended for good says why in words; so does one whose new task has found no
    node that can take it for `placement_timeout` seconds (Swarm would wait for one for ever,
    while the hub showed a server that never answers).
    """
    task = newest(tasks)
    if task is None:
        return ServerStatus(alive=False, reason="Your server's service has no task: the cluster stopped running it.")
    state = task.get("Status", {}).get("State")
    if unplaced(task, now) > placement_timeout:
        return ServerStatus(
            alive=False,
            reason=f"Your server had to start again, and for {placement_timeout:.0f} seconds no node of the "
            f"cluster could take it: {_error(task)}.",
        )
    if state in ALIVE_STATES and task.get("DesiredState") in DESIRED_ALIVE:
        addresses = (task_address(task, network) for network in networks) if state == "running" else ()
        return ServerStatus(alive=True, address=next(filter(None, addresses), None))
    if restart_coming(task, tasks, restart_policy, now):
        return ServerStatus(alive=True)
    retried = f" Swarm had started it {len(tasks)} times." if len(tasks) > 1 else ""
    return ServerStatus(alive=False, reason=ending(task, node_names.get(task.get("NodeID", ""), "?")) + retried)


def unplaced(task: Task, now: float) -> float:
    """Seconds since the task was made, if it is still waiting for a node and Swarm says that no
    node can take it (NO_NODE); 0 otherwise."""
    status = task.get("Status", {})
    waiting = status.get("State") == "pending" and task.get("DesiredState") in DESIRED_ALIVE
    return now - _created(task) if waiting and NO_NODE in status.get("Err", "") else 0.0


def restart_coming(ended: Task, tasks: Sequence[Task], policy: Mapping[str, Any], now: float) -> bool:
    """Whether Swarm starts the server again after its newest task `ended`, as the restart policy
    says: after any end for condition "any", any but a clean exit for "on-failure"; unless
    MaxAttempts restarts happened within Window before the end (every task after the first is
    a restart). A replacement Swarm has not made REPLACEMENT_GRACE seconds after the end and its
    restart delay will not come: Swarm's own count (kept in the manager's memory) gave up."""
    condition = policy.get("Condition", "any")
    if condition == "none" or (condition == "on-failure" and ended.get("Status", {}).get("State") == "complete"):
        return False
    end = timestamp(ended.get("Status", {}).get("Timestamp", "")) or now
    if now - end > policy.get("Delay", 0) / NANO + REPLACEMENT_GRACE:
        return False
    attempts, window = policy.get("MaxAttempts", 0), policy.get("Window", 0) / NANO
    restarts = sorted(_created(t) for t in tasks)[1:]
    recent = [r for r in restarts if not window or r >= end - window]
    return not attempts or len(recent) < attempts


def ending(task: Task, node: str) -> str:
    """Why a server's task ended, in words for the user whose server it was."""
    status = task.get("Status", {})
    state = status.get("State", "")
    error = status.get("Err") or status.get("Message") or ""
    code = (status.get("ContainerStatus") or {}).get("ExitCode")
    if state == "complete" or (code == 0 and state not in FAILED_STATES):
        return "Your server shut itself down (as after File > Shut Down in JupyterLab)."
    if code == KILLED_EXIT_CODE:
        limit = task.get("Spec", {}).get("Resources", {}).get("Limits", {}).get("MemoryBytes")
        why = f"it needed more memory than its limit of {_size(limit)}" if limit else "it ran out of memory"
        return f"Your server was killed (exit code {code}) on node {node}; most often that is because {why}."
    if code:
        return f"Your server stopped on node {node} with exit code {code}."
    if state in FAILED_STATES:
        return explain_failure(error, node, task.get("Spec", {}).get("ContainerSpec", {}).get("Image", "?"))
    return f"The cluster stopped your server on node {node} ({state}: {error or 'no reason given'})."


def _size(count: int) -> str:
    for unit, power in (("GiB", 30), ("MiB", 20)):
        if count >= 1 << power:
            return f"{count / (1 << power):.3g} {unit}"
    return f"{count} bytes"
