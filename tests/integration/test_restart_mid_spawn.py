"""A hub that goes away in the middle of alice's spawn leaves no service or config of hers behind,
and her next spawn works.

Her spawn is made to last: a Jupyter config in her home sleeps for ten minutes before the server
listens, so the hub is still waiting for it (the spawn pending, her service running) when it goes:
- killed (SIGKILL, as by the kernel's OOM killer or a lost node): the old hub saves nothing, and its
  database says a spawn of hers began but no service. The new hub marks her server stopped, and
  once it has checked the servers it restored, removes the service no spawner of it owns (its log
  says so: spawner/orphans.py);
- restarted (the service force-updated, as test_restarts.py does): JupyterHub cancels the spawn on
  SIGTERM and the old hub removes what it made itself.
The hub's own restart policy (docker-stack.yml) starts the new hub."""

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest
import requests

from tests.hub import FS_ROOT, SMALL, HubUser, hub_log, remove_servers_of, wait_for_no_containers
from tests.integration.test_restarts import hub_answers, restart, running_task_since

pytestmark = pytest.mark.swarm
ALICE_UID = 10001
HUB = "jovial_hub"
# The new hub sweeps once it has checked every server it restored; each check may wait up to the
# spawner's http_timeout (120 s) for a server that does not answer.
SWEPT_WITHIN = 180
SLOW_CONFIG = "import time\ntime.sleep(600)  # jovial-test: the server listens only ten minutes from now\n"


def kill(service: str) -> None:
    """SIGKILL the service's running container (a crash: nothing of the hub's shutdown runs), then
    wait until its restart policy has a new task running and the hub answers."""
    client = docker.from_env()
    since = datetime.now(UTC).replace(microsecond=0)
    containers = client.containers.list(filters={"label": f"com.docker.swarm.service.name={service}"})
    assert containers, f"no running container of {service} on this node"
    for container in containers:
        container.kill(signal="SIGKILL")
    deadline = time.monotonic() + 120
    while not (running_task_since(client, service, since) and hub_answers()):
        assert time.monotonic() < deadline, f"{service} did not come back within 120 s"
        time.sleep(0.2)


def her_objects(client: docker.DockerClient) -> list[str]:
    """Names of every service and config made for alice's servers."""
    services = client.services.list(filters={"label": "jovial.user=alice"})
    configs = client.configs.list(filters={"label": "jovial.object=jupyter-alice"})
    return [s.name for s in services] + [c.name for c in configs]


def wait_for_her_running_service(client: docker.DockerClient, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for service in client.services.list(filters={"label": "jovial.user=alice"}):
            if any(t["Status"]["State"] == "running" for t in service.tasks()):
                return
        time.sleep(0.2)
    raise TimeoutError(f"alice's service was not running after {timeout} s")


@pytest.fixture
def slow_start_config() -> Iterator[Path]:
    """A Jupyter config in alice's home (made by a first start) that keeps her server from answering;
    whatever was there is put back afterwards."""
    config_dir = FS_ROOT / "home" / "alice" / ".jupyter"
    config = config_dir / "jupyter_server_config.py"
    kept = config.read_bytes() if config.exists() else None
    remove_servers_of("alice")
    user = HubUser("alice")
    user.stop()
    if not config_dir.parent.exists():
        user.start(SMALL)  # makes her home, owned by her
        user.stop()
    try:
        config_dir.mkdir(exist_ok=True)
        config.write_text(SLOW_CONFIG)
        for path in (config_dir, config):
            os.chown(path, ALICE_UID, ALICE_UID)
        yield config
    finally:
        if kept is None:
            config.unlink(missing_ok=True)
        else:
            config.write_bytes(kept)


@pytest.mark.parametrize("goes", ["killed", "restarted"])
def test_a_hub_gone_in_the_middle_of_her_spawn_leaves_nothing_of_hers_and_her_next_spawn_works(slow_start_config: Path, goes: str) -> None:
    client = docker.from_env()
    user = HubUser("alice")
    since = int(time.time())
    try:
        with ThreadPoolExecutor(1) as pool:
            request = pool.submit(user.api.post, user.server_api_url, json={"user_options": SMALL}, timeout=60)
            wait_for_her_running_service(client)  # the spawn is under way: its service runs, the server sleeps
            assert not user.model()["servers"][""]["ready"]
            (kill if goes == "killed" else restart)(HUB)
            try:
                request.result()
            except requests.RequestException:
                pass  # the hub went away under the request

        deadline = time.monotonic() + SWEPT_WITHIN
        while her_objects(client):
            assert time.monotonic() < deadline, f"left {SWEPT_WITHIN} s after the hub came back: {her_objects(client)}"
            time.sleep(1)
        wait_for_no_containers(client, "alice")
        if goes == "killed":  # the new hub removed it (the old one could not)
            assert "Removing jupyter-alice (user 'alice', server ''): no spawner of this hub owns it" in hub_log(client, since)
        while user.model()["servers"].get(""):  # the new hub's check of her recorded server ends: stopped
            assert time.monotonic() < deadline, "the hub still counts her server as started"
            time.sleep(1)

        slow_start_config.unlink()
        user.start(SMALL)
        user.wait_ready(timeout=60)
        assert user.server_answers()
        assert [s.name for s in client.services.list(filters={"label": "jovial.user=alice"})] == ["jupyter-alice"]
    finally:
        user.stop()
        remove_servers_of("alice")
