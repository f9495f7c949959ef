"""A user's server killed under them: by the kernel's OOM killer, or again and again.

Each death is caused from inside carol's own server (a terminal of it, as she would), so it is the
real thing: the kernel kills the server process (exit 137), Swarm starts it again at a new
address (restart policy: on failure, 3 times), and the hub's watcher sees it at once and moves
her route there, without waiting for the hub's 30-second poll (its log says so). She reaches her
server again at the same URL with her files. After the third restart Swarm gives up: the hub
marks her server stopped within seconds, removes what is left of it, and tells her why on the
spawn page and at the start of her next spawn, which works. A server killed when no node can
take its restart (here: the only node lost the label that user servers are placed by) waits for
one as long as a start may take, and then it is stopped and she is told why too.
"""

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import pytest

from tests.hub import FS_ROOT, SMALL, HubUser, hub_log, remove_servers_of

pytestmark = pytest.mark.swarm
FS_LABEL = os.environ.get("JOVIAL_FS_LABEL", "jovial.fs")
START_TIMEOUT = float(os.environ.get("JOVIAL_START_TIMEOUT", "120"))  # the deployed hub's
USER = "carol"
SERVICE = f"jupyter-{USER}"
MARKER = FS_ROOT / "home" / USER / "jovial-deaths-test"
# Run from her terminal, whose shell's parent is the server itself; in the background, so that
# the terminal answers before the server dies.
KILL_THE_SERVER = "(sleep 1; kill -KILL $PPID) >/dev/null 2>&1 &"
# The server is made the OOM killer's first choice, then a process outgrows the 2 GB limit.
OUT_OF_MEMORY = "(sleep 1; echo 1000 > /proc/$PPID/oom_score_adj; python3 -c 'b = bytearray(3 * 2**30)') >/dev/null 2>&1 &"


@pytest.fixture
def carol() -> Iterator[HubUser]:
    remove_servers_of(USER)
    user = HubUser(USER)
    try:
        user.start(SMALL)  # 2 GB: the out-of-memory test outgrows exactly that
        user.wait_ready()
        yield user
    finally:
        try:
            user.stop()
        finally:
            remove_servers_of(USER)
            MARKER.unlink(missing_ok=True)


def running_task(client: docker.DockerClient) -> tuple[str, str] | None:
    """(task ID, address) of her service's running task, if it has one."""
    try:
        tasks = client.services.get(SERVICE).tasks({"desired-state": "running"})
    except docker.errors.NotFound:
        return None
    for task in tasks:
        if task["Status"]["State"] == "running":
            return task["ID"], task["NetworksAttachments"][0]["Addresses"][0].split("/")[0]
    return None


def die_and_come_back(user: HubUser, client: docker.DockerClient, how: str) -> tuple[str, str, str, float]:
    """Kill her server from inside; return the killed task's ID, its old and new address and the
    seconds until she reached it again through the proxy."""
    old_task, old_address = running_task(client)
    status, output = user.run_in_terminal(how)
    assert status == 0, output
    died = time.monotonic()
    while (new := running_task(client)) in (None, (old_task, old_address)):
        assert time.monotonic() - died < 60, "Swarm did not start the killed server again"
        time.sleep(0.2)
    while not user.server_answers():
        assert time.monotonic() - died < 90, "her route did not follow the server to its new address"
        time.sleep(0.2)
    return old_task, old_address, new[1], time.monotonic() - died


def test_a_server_killed_for_its_memory_comes_back_at_the_same_url_with_her_files(carol: HubUser) -> None:
    client = docker.from_env()
    assert carol.run_in_terminal(f"echo before > ~/{MARKER.name}") == (0, "")
    since = int(time.time())
    killed, old_address, new_address, took = die_and_come_back(carol, client, OUT_OF_MEMORY)
    print(f"OOM-killed server answered again through the proxy {took:.1f} s after the kill")
    assert new_address != old_address
    (ended,) = [t for t in client.services.get(SERVICE).tasks() if t["ID"] == killed]
    assert ended["Status"]["State"] == "failed" and ended["Status"]["ContainerStatus"]["ExitCode"] == 137, ended["Status"]
    container = client.api.inspect_container(ended["Status"]["ContainerStatus"]["ContainerID"])
    assert container["State"]["OOMKilled"], "the kernel's OOM killer did not kill it"
    # The watcher saw the move and polled at once (the hub's own poll comes only every 30 s).
    log = hub_log(client, since)
    assert f"The server {SERVICE} is now running at {new_address}" in log, log[-3000:]
    assert f"moved from {old_address} to {new_address}" in log
    assert carol.model()["servers"][""]["ready"]
    assert carol.run_in_terminal(f"cat ~/{MARKER.name}") == (0, "before")


def test_a_server_that_keeps_dying_is_stopped_and_she_is_told_why(carol: HubUser) -> None:
    client = docker.from_env()
    for _ in range(3):  # the first run and two restarts die; Swarm starts it again each time
        die_and_come_back(carol, client, KILL_THE_SERVER)
    since = int(time.time())
    assert carol.run_in_terminal(KILL_THE_SERVER)[0] == 0  # the third restart dies too: Swarm gives up
    deadline = time.monotonic() + 60
    while carol.model()["servers"].get(""):
        assert time.monotonic() < deadline, "the hub did not notice that her server is gone"
        time.sleep(0.5)
    assert f"The server {SERVICE} is now gone" in hub_log(client, since)
    # Nothing is left of it: its service and configs are removed, its containers go.
    assert not client.services.list(filters={"name": SERVICE})
    assert not client.configs.list(filters={"label": f"jovial.object={SERVICE}"})
    remove_servers_of(USER)  # waits for the containers to go (and fails if they do not)

    why = "Your server was killed (exit code 137)"
    form = carol.session.get(f"{carol.hub_url}/hub/spawn/{USER}", timeout=30)
    assert form.status_code == 200 and why in form.text and "Swarm had started it 4 times." in form.text
    messages = carol.start(SMALL)
    told = [m for m in messages if m.startswith("Your previous server stopped at ")]
    assert len(told) == 1 and why in told[0], messages
    carol.wait_ready()
    assert carol.server_answers()
    carol.stop()  # stopped by her, not dead: the spawn page shows the form only
    form = carol.session.get(f"{carol.hub_url}/hub/spawn/{USER}", timeout=30)
    assert form.status_code == 200 and 'name="profile"' in form.text and why not in form.text


@contextmanager
def label_removed_from_the_node(client: docker.DockerClient, key: str) -> Iterator[None]:
    """The single node without the node label `key` (no new user server can be placed); put back afterwards."""
    (node,) = client.nodes.list()
    value = node.attrs["Spec"]["Labels"][key]
    node.update({**node.attrs["Spec"], "Labels": {k: v for k, v in node.attrs["Spec"]["Labels"].items() if k != key}})
    try:
        yield
    finally:
        node.reload()
        node.update({**node.attrs["Spec"], "Labels": {**node.attrs["Spec"].get("Labels", {}), key: value}})


def test_a_server_no_node_can_take_when_it_must_start_again_is_stopped_and_she_is_told_why(carol: HubUser) -> None:
    client = docker.from_env()
    since = int(time.time())
    swarm_said_no_node = False
    with label_removed_from_the_node(client, FS_LABEL):
        assert carol.run_in_terminal(KILL_THE_SERVER)[0] == 0
        deadline = time.monotonic() + START_TIMEOUT + 60
        while carol.model()["servers"].get(""):
            assert time.monotonic() < deadline, "the hub still shows a server that no node can take"
            try:
                tasks = client.services.get(SERVICE).tasks({"desired-state": "running"})
            except docker.errors.NotFound:  # the hub removed it between the two questions
                tasks = []
            swarm_said_no_node |= any("no suitable node" in t["Status"].get("Err", "") for t in tasks)
            time.sleep(1)
    assert swarm_said_no_node, "Swarm never said that no node could take her server"
    assert f"The server {SERVICE} is now gone" in hub_log(client, since)
    assert not client.services.list(filters={"name": SERVICE})
    assert not client.configs.list(filters={"label": f"jovial.object={SERVICE}"})
    why = f"Your server had to start again, and for {START_TIMEOUT:.0f} seconds no node of the cluster could take it: no suitable node"
    form = carol.session.get(f"{carol.hub_url}/hub/spawn/{USER}", timeout=30)
    assert form.status_code == 200 and why in form.text, form.text[-3000:]
