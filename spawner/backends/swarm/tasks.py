"""Reading Swarm tasks: where a starting server is, in words, whether it can never run, and
whether a running one is still alive and where. Pure."""

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import ServerStatus

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


@dataclass(frozen=True)
class TaskView:
    """What one look at a service's tasks says: a step to show, a failure, or an address."""

    message: str
    percent: int
    failure: str | None = None
    address: str | None = None
    exited: bool = False


def _created(task: Task) -> tuple[str, int]:
    """Creation time, comparable: Docker's timestamps have a variable number of fraction digits."""
    stamp = task.get("CreatedAt", "").rstrip("Z")
    seconds, _, fraction = stamp.partition(".")
    return seconds, int(fraction.ljust(9, "0")[:9] or 0)


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
            return attachment["Addresses"][0].split("/")[0]
    return None


def explain_failure(error: str, node: str, image: str) -> str:
    """Swarm's task error -> what went wrong, in words for the user and the operator."""
    missing = re.search(r"bind source path does not exist: (\S+)", error)
    if missing:
        return f"The folder {missing.group(1)} that your server needs is missing on node {node}. ({error})"
    if re.search(r"No such image|pull access denied|manifest unknown|repository does not exist", error, re.I):
        return f"The image {image} is not on node {node} and cannot be downloaded. ({error})"
    exit_code = re.search(r"non-zero exit \((\d+)\)", error)
    if exit_code:
        return f"Your server stopped right after starting (exit code {exit_code.group(1)})."
    if "no suitable node" in error:
        return f"No node of the cluster can run your server: {error}."
    return f"The cluster could not run your server on node {node}: {error}."


def view_tasks(tasks: Sequence[Task], node_names: Mapping[str, str], network: str, image: str) -> TaskView:
    """Summarise a starting service's tasks. Any failed task fails the start: retries only hide it."""
    for task in tasks:
        status = task.get("Status", {})
        node = node_names.get(task.get("NodeID", ""), "?")
        if status.get("State") in FAILED_STATES:
            error = status.get("Err") or status.get("Message") or "unknown error"
            return TaskView("", 0, failure=explain_failure(error, node, image), exited="exit" in error)
    task = newest(tasks)
    if task is None:
        return TaskView(*_STEPS["new"])
    status = task.get("Status", {})
    state = status.get("State", "new")
    node = node_names.get(task.get("NodeID", ""), "?")
    error = status.get("Err", "")
    if state == "pending" and "no suitable node" in error:
        return TaskView("", 0, failure=explain_failure(error, node, image))
    if state not in ALIVE_STATES:
        return TaskView("", 0, failure=f"Your server stopped while starting ({state}: {error or status.get('Message', '')}).")
    message, percent = _STEPS[state]
    address = task_address(task, network) if state == "running" else None
    return TaskView(message.format(node=node), percent, address=address)


def server_status(tasks: Sequence[Task], networks: Collection[str]) -> ServerStatus:
    """Whether a service's server is alive, judged by its newest task, and its address on `networks`.

    A server on its way again (Swarm restarting it after a crash: the new task waits out the
    restart delay with desired state "ready") is alive, without an address.
    """
    task = newest(tasks)
    if task is None:
        return ServerStatus(alive=False, reason="the service has no task")
    status = task.get("Status", {})
    state = status.get("State")
    if state in ALIVE_STATES and task.get("DesiredState") in DESIRED_ALIVE:
        addresses = (task_address(task, network) for network in networks) if state == "running" else ()
        return ServerStatus(alive=True, address=next(filter(None, addresses), None))
    return ServerStatus(alive=False, reason=f"{state}: {status.get('Err') or status.get('Message', '')}")
