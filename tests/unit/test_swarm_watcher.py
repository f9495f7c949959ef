"""The watcher's pure parts: a relist's answers -> per-service state, which events call for a
relist, and a service's status (alive, and where) read from its tasks."""

from jovial.backends.swarm.tasks import server_status
from jovial.backends.swarm.watcher import node_names, services_by_name, unknown_nodes, wants_relist


def service(sid: str, name: str, network: str = "net-id") -> dict:
    return {"ID": sid, "Spec": {"Name": name, "TaskTemplate": {"Networks": [{"Target": network}]}}}


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


def test_service_events_and_the_life_of_jovial_containers_call_for_a_relist() -> None:
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
    status = server_status([task("s1", "failed", desired="shutdown")], {"net-id"})
    assert not status.alive and status.reason == "failed: boom" and status.address is None
    assert not server_status([task("s1", "running", desired="shutdown")], {"net-id"}).alive
    assert server_status([], {"net-id"}).reason == "the service has no task"
