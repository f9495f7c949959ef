"""The watcher's pure parts: a relist's answers -> per-service state, which events call for a
relist, and a service's status (alive, and where) read from its tasks."""

from datetime import UTC, datetime

from jovial.backends.swarm.tasks import server_status as status_of_tasks
from jovial.backends.swarm.watcher import node_names, services_by_name, unknown_nodes, wants_relist

ON_FAILURE = {"Condition": "on-failure", "MaxAttempts": 3}


NOW = 1_795_000_000.0  # seconds since the epoch: 2026-11-18


PLACEMENT_TIMEOUT = 120.0


def server_status(tasks: list[dict], networks: set[str], nodes: dict[str, str] | None = None, policy: dict | None = None, now: float = NOW):
    return status_of_tasks(tasks, networks, nodes or {}, ON_FAILURE if policy is None else policy, now, PLACEMENT_TIMEOUT)


def service(sid: str, name: str, network: str = "net-id") -> dict:
    return {"ID": sid, "Spec": {"Name": name, "TaskTemplate": {"Networks": [{"Target": network}], "RestartPolicy": ON_FAILURE}}}


def task(service_id: str, state: str = "running", index: int = 1, address: str | None = None, desired: str = "running") -> dict:
    t = {
        "ServiceID": service_id,
        "NodeID": "n1",
        "Version": {"Index": index},
        "DesiredState": desired,
        "Status": {"State": state, "Err": "boom" if state == "failed" else ""},
    }
    if address:
        t["NetworksAttachments"] = [{"Network": {"ID": "net-id", "Spec": {"Name": "jovial"}}, "Addresses": [address]}]
    return t


def test_tasks_go_to_their_service_by_id_and_other_services_tasks_are_dropped() -> None:
    a, b = task("s1", index=1), task("s1", "failed", index=2)
    state = services_by_name([service("s1", "jupyter-alice"), service("s2", "jupyter-bob")], [a, task("stack"), b])
    assert set(state) == {"jupyter-alice", "jupyter-bob"}
    assert state["jupyter-alice"].tasks == (a, b)
    assert state["jupyter-bob"].tasks == () and state["jupyter-bob"].networks == frozenset({"net-id"})
    assert state["jupyter-bob"].restart_policy == ON_FAILURE


def test_a_respawned_service_has_only_its_own_tasks_not_those_of_the_one_it_replaced() -> None:
    respawned = task("s9", "starting", index=7)
    after = services_by_name([service("s9", "jupyter-alice")], [task("s1", address="10.0.1.5/24"), respawned])
    assert after["jupyter-alice"].tasks == (respawned,)
    assert services_by_name([], [task("s1")]) == {}


def test_node_names_are_looked_up_only_for_new_nodes() -> None:
    tasks = [task("s1"), {"ServiceID": "s1", "NodeID": ""}, {"ServiceID": "s1"}]
    assert unknown_nodes(tasks, {}) == {"n1"}
    assert unknown_nodes(tasks, {"n1": "vm"}) == set()
    assert node_names([{"ID": "n1", "Description": {"Hostname": "vm"}}, {"ID": "abcdefabcdefabc"}]) == {
        "n1": "vm",
        "abcdefabcdefabc": "abcdefabcdef",
    }


def test_service_and_node_events_and_the_life_of_jovial_containers_call_for_a_relist() -> None:
    assert wants_relist({"Type": "node", "Action": "update", "Actor": {"Attributes": {"state.new": "down"}}})
    ours = {"Attributes": {"jovial.managed": "true", "name": "jupyter-alice.1.x"}}
    assert wants_relist({"Type": "service", "Action": "remove", "Actor": {"Attributes": {"name": "jupyter-alice"}}})
    assert wants_relist({"Type": "container", "Action": "die", "Actor": ours})
    assert not wants_relist({"Type": "container", "Action": "exec_start: id", "Actor": ours})
    assert not wants_relist({"Type": "container", "Action": "health_status: healthy", "Actor": ours})
    assert not wants_relist({"Type": "container", "Action": "die", "Actor": {"Attributes": {"name": "jovial_hub.1.x"}}})


def test_a_running_server_is_alive_at_its_address_on_the_services_network() -> None:
    status = server_status([task("s1", address="10.0.1.5/24")], {"net-id"})
    assert status.alive and status.address == "10.0.1.5"
    assert server_status([task("s1", address="10.0.1.5/24")], {"jovial"}).address == "10.0.1.5"
    assert server_status([task("s1", address="10.0.1.5/24")], {"other"}).address is None


def test_a_server_swarm_restarts_after_a_crash_is_alive_with_its_new_address_once_running() -> None:
    crashed = task("s1", "failed", index=3, address="10.0.1.5/24", desired="shutdown")
    delayed = server_status([crashed, task("s1", "ready", index=4, desired="ready")], {"net-id"})
    assert delayed.alive and delayed.address is None
    restarting = server_status([crashed, task("s1", "starting", index=5)], {"net-id"})
    assert restarting.alive and restarting.address is None
    moved = server_status([crashed, task("s1", index=6, address="10.0.1.9/24")], {"net-id"})
    assert moved.alive and moved.address == "10.0.1.9"


def test_a_server_that_ended_is_not_alive_and_says_why() -> None:
    status = server_status([task("s1", "failed", desired="shutdown")], {"net-id"}, {"n1": "worker-2"}, {"Condition": "none"})
    assert not status.alive and status.address is None
    assert status.reason == "The cluster could not run your server on node worker-2: boom."
    assert not server_status([task("s1", "running", desired="shutdown")], {"net-id"}, policy={"Condition": "none"}).alive
    assert server_status([], {"net-id"}).reason == "Your server's service has no task: the cluster stopped running it."


def test_a_server_is_alive_between_a_crash_and_the_restart_its_policy_promises() -> None:
    crashed = [task("s1", "failed", index=i, desired="shutdown") for i in range(1, 5)]
    assert (
        server_status(crashed[:1], {"net-id"})
        == server_status(crashed[:3], {"net-id"})
        == status_of_tasks(crashed[:1], {"net-id"}, {}, {"Condition": "any"}, NOW, PLACEMENT_TIMEOUT)
    )
    assert server_status(crashed[:1], {"net-id"}).alive and server_status(crashed[:1], {"net-id"}).address is None
    given_up = server_status(crashed, {"net-id"})  # the first run and its 3 restarts
    assert not given_up.alive and given_up.reason.endswith("Swarm had started it 4 times.")
    assert not server_status([task("s1", "complete", desired="shutdown")], {"net-id"}).alive  # a clean exit is not restarted
    assert server_status([task("s1", "complete", desired="shutdown")], {"net-id"}, policy={"Condition": "any"}).alive
    assert server_status(crashed * 5, {"net-id"}, policy={"Condition": "on-failure"}).alive  # no MaxAttempts: for ever


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def crash_at(created: float, ended: float, index: int) -> dict:
    crashed = task("s1", "failed", index=index, desired="shutdown")
    crashed["CreatedAt"], crashed["Status"]["Timestamp"] = stamp(created), stamp(ended)
    return crashed


def test_only_restarts_within_the_window_count_and_a_replacement_that_never_came_is_not_waited_for() -> None:
    policy = {"Condition": "on-failure", "MaxAttempts": 3, "Window": 600 * 10**9, "Delay": 10**9}
    # Three node losses in three days: each is restarted (the earlier restarts are out of the window).
    days = [crash_at(NOW - day * 86400, NOW - day * 86400 + 3600, i) for i, day in enumerate((3, 2, 1))]
    latest = crash_at(NOW - 60, NOW - 1, 4)
    assert server_status([*days, latest], {"net-id"}, policy=policy).alive
    # A crash loop: the first run and three restarts within a minute; the fourth end is final.
    loop = [crash_at(NOW - 60 + 10 * i, NOW - 55 + 10 * i, i) for i in range(4)]
    assert not server_status(loop, {"net-id"}, policy=policy, now=NOW - 55 + 30 + 0.5).alive
    assert server_status(loop[:3], {"net-id"}, policy=policy, now=NOW - 55 + 20 + 0.5).alive
    # Swarm's own count lives in the manager's memory: no replacement 16 s after the end + delay means none is coming.
    assert server_status(loop[:1], {"net-id"}, policy=policy, now=NOW - 55 + 17.5).alive is False


def test_a_server_no_node_can_take_is_alive_until_the_placement_timeout_then_ended_with_swarms_reason() -> None:
    crashed = crash_at(NOW - 200, NOW - 190, 1)
    waiting = task("s1", "pending", index=2)
    waiting["CreatedAt"] = stamp(NOW - 189)
    waiting["Status"]["Err"] = "no suitable node (scheduling constraints not satisfied on 1 node)"
    assert server_status([crashed, waiting], {"net-id"}, now=NOW - 189 + PLACEMENT_TIMEOUT - 1).alive
    ended = server_status([crashed, waiting], {"net-id"}, now=NOW - 189 + PLACEMENT_TIMEOUT + 1)
    assert not ended.alive
    assert ended.reason == (
        "Your server had to start again, and for 120 seconds no node of the cluster could take it: "
        "no suitable node (scheduling constraints not satisfied on 1 node)."
    )
    # Pending as long without Swarm saying that no node can take it: left to Swarm, alive.
    waiting["Status"]["Err"] = ""
    assert server_status([crashed, waiting], {"net-id"}, now=NOW).alive
