"""Idle culling on the deployed stack: the hub's idle-culler service (jupyterhub-idle-culler, with
only the scopes it needs) stops a server left idle past JOVIAL_CULL_IDLE; its service and configs
go, her files stay, and her spawn form then says why her server stopped.

The stack's limit is an hour; this test sets the hub's to 20 s (a service update of the hub, which
restarts it) and sets the variable back to its value afterwards, also when it fails.
"""

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import pytest
import requests

from tests.hub import FS_ROOT, HUB_URL, SMALL, HubUser, hub_log, remove_servers_of, wait_for_no_containers

pytestmark = pytest.mark.swarm
USER = "student55"
IDLE = 20  # seconds
HUB = "jovial_hub"


def wait_for_the_hub(timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{HUB_URL}/hub/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"the hub did not answer within {timeout:.0f} s of its update"
        time.sleep(1)


def hub_environment() -> list[str]:
    return docker.from_env().services.get(HUB).attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env", [])


@contextmanager
def hub_culling_servers_idle_for(seconds: int) -> Iterator[None]:
    """The deployed hub with JOVIAL_CULL_IDLE=`seconds`; afterwards its variable is set back to the
    value it had (or removed, if it had none), also when the test or the update fails."""
    before = hub_environment()
    found = [v for v in before if v.startswith("JOVIAL_CULL_IDLE=")]
    update = ["docker", "service", "update", "--quiet"]
    try:
        subprocess.run([*update, "--env-add", f"JOVIAL_CULL_IDLE={seconds}", HUB], check=True, timeout=300)
        wait_for_the_hub()
        yield
    finally:
        back = ["--env-add", found[0]] if found else ["--env-rm", "JOVIAL_CULL_IDLE"]
        subprocess.run([*update, *back, HUB], check=True, timeout=300)
        wait_for_the_hub()
        assert sorted(hub_environment()) == sorted(before), "the hub's environment was not put back"


def test_a_server_idle_past_the_limit_is_stopped_her_files_stay_and_she_is_told_why() -> None:
    client = docker.from_env()
    probe = FS_ROOT / "home" / USER / "culling-probe.txt"
    remove_servers_of(USER)
    with hub_culling_servers_idle_for(IDLE):
        since = int(time.time())
        user = HubUser(USER)
        try:
            user.start(SMALL)
            user.wait_ready()
            assert user.run_in_terminal(f"echo kept > {probe.name}")[0] == 0  # her last activity
            deadline = time.monotonic() + IDLE + 120
            while user.model()["servers"].get(""):
                assert time.monotonic() < deadline, f"her server, idle for over {IDLE} s, was not stopped"
                time.sleep(2)
            assert f"DELETE /hub/api/users/{USER}/server (idle-culler@" in hub_log(client, since), "the culler did not stop it"
            wait_for_no_containers(client, USER)
            assert not client.services.list(filters={"label": f"jovial.user={USER}"}), "her service is left"
            assert not client.configs.list(filters={"label": f"jovial.object=jupyter-{USER}"}), "her configs are left"
            assert probe.read_text() == "kept\n"
            form = user.session.get(f"{user.hub_url}/hub/spawn/{USER}", timeout=30)
            assert form.status_code == 200, form.status_code
            assert "Your previous server had been idle for" in form.text, form.text[-3000:]
            assert f"this site stops servers idle for {IDLE} seconds. Your files are kept." in form.text
        finally:
            user.stop()
            remove_servers_of(USER)
            probe.unlink(missing_ok=True)
