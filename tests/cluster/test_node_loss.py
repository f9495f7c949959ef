"""A node lost under a running user server, on a real 3-node swarm (tests/cluster/conftest.py).

Each test starts one user's server through the cluster's hub (it lands on one of the two workers
labelled for the shared filesystem), writes a file in the home, and then does to that worker
what happens to real machines: a crash (power loss), a freeze (a hung kernel: every process
stopped), a cut (the network link down), an engine restart. Swarm reschedules the server on the
other worker; the hub's watcher sees the move and routes the user there, without a hub restart,
at the same URL; the file is intact. Times to recovery are printed (`-s`), not asserted: the
benchmark and the README report them.

Split brain, shown as it is: a worker cut off from the manager keeps running its old task, on
the same home as the replacement, until the link returns; Swarm then stops it within seconds,
and the replacement goes on answering.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest

from tests.cluster.conftest import Cluster
from tests.hub import SMALL, HubUser, hub_log, remove_servers_of

pytestmark = pytest.mark.cluster
MARKER = "jovial-node-loss-test"
RECOVERY_LIMIT = 90  # seconds: beyond this the server is lost, not slow


def placed(manager: docker.DockerClient, service: str) -> tuple[str, str, str] | None:
    """(task ID, node, address) of the service's running task, if it has one."""
    nodes = {n.id: n.attrs["Description"]["Hostname"] for n in manager.nodes.list()}
    for task in manager.api.tasks(filters={"service": service, "desired-state": "running"}):
        if task["Status"]["State"] == "running" and task.get("NetworksAttachments"):
            return task["ID"], nodes.get(task["NodeID"], "?"), task["NetworksAttachments"][0]["Addresses"][0].split("/")[0]
    return None


@contextmanager
def running_server(cluster: Cluster, name: str) -> Iterator[tuple[HubUser, docker.DockerClient, tuple[str, str, str]]]:
    """The user's server, started through the cluster's hub, with a file written in the home."""
    manager = cluster.manager()
    user = cluster.user(name)
    marker = Path(cluster.facts["JOVIAL_CLUSTER_FS_ROOT"]) / "home" / name / MARKER
    try:
        user.start(SMALL)
        user.wait_ready()
        assert user.run_in_terminal(f"echo written-before > ~/{MARKER}") == (0, "")
        where = placed(manager, f"jupyter-{name}")
        assert where and where[1] in cluster.workers, where
        yield user, manager, where
    finally:
        try:
            user.stop()
        finally:
            remove_servers_of(name, client=manager)
            manager.close()
            marker.unlink(missing_ok=True)


def back_elsewhere(user: HubUser, manager: docker.DockerClient, lost: str, since: float) -> tuple[str, str, float]:
    """Wait until the server runs on another node than `lost` and answers through the proxy;
    return that node, its address and the seconds since `since`."""
    service = f"jupyter-{user.name}"
    while not ((where := placed(manager, service)) and where[1] != lost and user.server_answers()):
        assert time.monotonic() - since < RECOVERY_LIMIT, f"{user.name}'s server did not come back: {where}"
        time.sleep(0.2)
    return where[1], where[2], time.monotonic() - since


def assert_the_same_server_for_her(user: HubUser, cluster: Cluster, old_address: str, new_address: str, since: int) -> None:
    """Same URL, her file intact, and the hub moved her route itself (its log says so)."""
    assert user.model()["servers"][""]["ready"]
    assert user.run_in_terminal(f"cat ~/{MARKER}") == (0, "written-before")
    log = cluster_hub_log(cluster, since)
    assert f"moved from {old_address} to {new_address}" in log, log[-2000:]


def cluster_hub_log(cluster: Cluster, since: int) -> str:
    """What the cluster's hub logged since `since` (seconds since the epoch)."""
    manager = cluster.manager()
    try:
        return hub_log(manager, since, cluster.stack)
    finally:
        manager.close()


def stale_containers(cluster: Cluster, node: str, name: str) -> list[str]:
    """The user's containers still running on the node, asked of the node's own engine."""
    client = cluster.node(node)
    try:
        return [c["Id"] for c in client.api.containers(filters={"label": f"jovial.user={name}"})]
    finally:
        client.close()


def wait_for_no_stale_container(cluster: Cluster, node: str, name: str, since: float) -> float:
    while stale_containers(cluster, node, name):
        assert time.monotonic() - since < RECOVERY_LIMIT, f"the stale task on {node} was not stopped"
        time.sleep(0.2)
    return time.monotonic() - since


def test_a_crashed_node_s_server_comes_back_on_the_other_node(cluster: Cluster) -> None:
    with running_server(cluster, "alice") as (user, manager, (_, node, address)):
        log_since = int(time.time())
        try:
            crashed = cluster.fault("crash", node)
            other, new_address, took = back_elsewhere(user, manager, node, crashed)
            print(f"crash of {node}: alice's server answered again on {other} after {took:.1f} s")
            assert_the_same_server_for_her(user, cluster, address, new_address, log_since)
        finally:
            cluster.fault("revive", node)


@pytest.mark.parametrize(
    ("fault", "undo", "name"),
    [("freeze", "thaw", "bob"), ("cut", "heal", "carol")],
)
def test_a_frozen_or_cut_off_node_s_server_comes_back_and_its_stale_task_stops_when_it_returns(
    cluster: Cluster, fault: str, undo: str, name: str
) -> None:
    with running_server(cluster, name) as (user, manager, (_, node, address)):
        log_since = int(time.time())
        try:
            faulted = cluster.fault(fault, node)
            other, new_address, took = back_elsewhere(user, manager, node, faulted)
            print(f"{fault} of {node}: {name}'s server answered again on {other} after {took:.1f} s")
            assert_the_same_server_for_her(user, cluster, address, new_address, log_since)
            if fault == "cut":  # split brain: the cut-off node cannot hear that its task was replaced
                assert stale_containers(cluster, node, name), f"the cut-off {node} stopped its task by itself"
        finally:
            returned = cluster.fault(undo, node)
        took = wait_for_no_stale_container(cluster, node, name, returned)
        print(f"the stale task on {node} stopped {took:.1f} s after the {undo}")
        # Her server still runs where Swarm moved it, and answers. Once, in CI, it did not answer at
        # this very moment (in none of some 30 tries since; cause not found, no log was kept then):
        # a pause is printed, with what the request got and what the hub logged of her, and fails
        # the test only if she is not answered again within RECOVERY_LIMIT.
        if why := user.why_server_does_not_answer():
            *_, pause = back_elsewhere(user, manager, node, time.monotonic())
            her_lines = [line for line in cluster_hub_log(cluster, log_since).splitlines() if name in line]
            print(f"right after that her server did not answer ({why}); it did {pause:.1f} s later. "
                  "The hub's last lines of her:", *her_lines[-40:], sep="\n")


def test_an_engine_restart_on_the_worker_brings_the_server_back_or_says_it_stopped(cluster: Cluster) -> None:
    with running_server(cluster, "student01") as (user, manager, (task, node, _)):
        restarted = cluster.fault("restart-engine", node)
        while True:
            assert time.monotonic() - restarted < RECOVERY_LIMIT, "the hub neither routes to the server nor says it stopped"
            server = user.model()["servers"].get("")
            if server is None:  # reported stopped: the hub says why, and nothing is left of it
                page = user.session.get(f"{user.hub_url}/hub/spawn/{user.name}", timeout=30).text
                assert "Your previous server stopped at " in page
                assert not manager.services.list(filters={"label": f"jovial.user={user.name}"})
                print(f"engine restart on {node}: the hub reported student01's server stopped")
                break
            if (where := placed(manager, "jupyter-student01")) and where[0] != task and user.server_answers():
                print(f"engine restart on {node}: student01's server answered again on {where[1]} "
                      f"after {time.monotonic() - restarted:.1f} s")
                assert user.run_in_terminal(f"cat ~/{MARKER}") == (0, "written-before")
                break
            time.sleep(0.5)


def test_an_engine_restart_on_the_manager_keeps_the_servers_files_and_the_hub_finds_it_again(cluster: Cluster) -> None:
    with running_server(cluster, "student02") as (user, manager, (task, node, _)):
        restarted = cluster.fault("restart-engine", cluster.facts["JOVIAL_CLUSTER_MANAGER"])
        while not user.server_answers():
            assert time.monotonic() - restarted < 2 * RECOVERY_LIMIT, "the hub did not come back to student02's server"
            time.sleep(0.5)
        took = time.monotonic() - restarted
        now = placed(manager, "jupyter-student02")
        assert now and now[1] in cluster.workers, now
        # Usually the very same task, never stopped. But the restarted manager gives each worker a
        # grace period to report back; a worker slower than that (two cores, three engines starting)
        # is marked down, and Swarm replaces its tasks. Both are Swarm's behaviour: what Jovial
        # owes the user is her server answering at her URL with her files, and the hub knowing it.
        kept = "the same task" if now[0] == task else f"a new task on {now[1]} (Swarm marked {node} down meanwhile)"
        print(f"engine restart on the manager: student02's server answered again after {took:.1f} s, as {kept}")
        assert user.run_in_terminal(f"cat ~/{MARKER}") == (0, "written-before")
        assert user.model()["servers"][""]["ready"]

