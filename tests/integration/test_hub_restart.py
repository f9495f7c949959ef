"""Hub restart with servers running: the hub service is force-updated (a new hub container on the
same database); every running server keeps running in the same service, is found again by the new
hub's watcher on its first list, and answers through the proxy with the same token."""

import time
from datetime import datetime, timezone

import docker
import pytest
import requests

from tests.hub import HUB_URL, HubUser, remove_servers_of

pytestmark = pytest.mark.swarm
USERS = ("alice", "bob")


def running_hub_task_since(client: docker.DockerClient, since: datetime) -> bool:
    for task in client.services.get("jovial_hub").tasks({"desired-state": "running"}):
        created = datetime.fromisoformat(task["CreatedAt"].split(".")[0]).replace(tzinfo=timezone.utc)
        if task["Status"]["State"] == "running" and created >= since:
            return True
    return False


def hub_answers() -> bool:
    try:
        return requests.get(f"{HUB_URL}/hub/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_servers_survive_a_hub_restart_and_are_found_again() -> None:
    client = docker.from_env()
    remove_servers_of(*USERS)
    users = [HubUser(name) for name in USERS]
    try:
        for user in users:
            user.start()
            user.wait_ready()
        services = {u.name: client.services.get(f"jupyter-{u.name}").id for u in users}

        restarted_at = datetime.now(timezone.utc).replace(microsecond=0)
        client.services.get("jovial_hub").force_update()
        deadline = time.monotonic() + 120
        while not (running_hub_task_since(client, restarted_at) and hub_answers()):
            assert time.monotonic() < deadline, "the hub did not come back within 120 s"
            time.sleep(0.5)

        back_at = time.monotonic()
        for user in users:
            server = user.model()["servers"][""]
            assert server["ready"], f"{user.name}'s server is not ready after the hub restart: {server}"
            assert client.services.get(f"jupyter-{user.name}").id == services[user.name]  # not recreated
            # The server checks the user's token with the hub: it must find the new hub's address
            # (servers cache a name for at most 10 s). A user would retry; so does the test.
            while not user.server_answers():
                assert time.monotonic() - back_at < 30, f"{user.name}'s server unreachable 30 s after the hub came back"
                time.sleep(1)
        print(f"servers answered through the proxy {time.monotonic() - back_at:.1f} s after the hub came back")

        users[0].stop()  # the new hub tracks the server it found: stopping it removes its service
        assert not client.services.list(filters={"label": f"jovial.user={users[0].name}"})
    finally:
        for user in users:
            user.stop()
        remove_servers_of(*USERS)
