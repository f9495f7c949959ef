"""Hub and proxy restarts with 20 servers running (20 of the dev LDAP's students).

Hub: the hub service is force-updated (a new hub container on the same database). Every server
keeps running in the same service, is found again by the new hub's watcher, answers through the
proxy with the same token, and every user's browser session (cookie) is still logged in.

Proxy: the proxy service is force-updated; the new proxy starts with no routes and asks the hub
for them (images/proxy/sync-routes.js), so every server answers again without anyone doing
anything, before the hub's own 30 s route check would have repaired it."""

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import docker
import pytest
import requests

from tests.hub import FS_ROOT, HUB_URL, SMALL, HubUser, hub_log, remove_servers_of

pytestmark = pytest.mark.swarm
USERS = [f"student{i:02d}" for i in range(1, 21)]
ROUTE_CHECK_INTERVAL = 30  # the hub's last_activity_interval (stacks/jupyterhub_config.py)


@pytest.fixture(scope="module")
def running() -> Iterator[list[HubUser]]:
    remove_servers_of(*USERS)
    with ThreadPoolExecutor(len(USERS)) as pool:
        users = list(pool.map(HubUser, USERS))
        try:
            list(pool.map(lambda user: user.start(SMALL), users))
            list(pool.map(HubUser.wait_ready, users))
            yield users
        finally:
            list(pool.map(HubUser.stop, users))
            remove_servers_of(*USERS)


def running_task_since(client: docker.DockerClient, service: str, since: datetime) -> bool:
    for task in client.services.get(service).tasks({"desired-state": "running"}):
        created = datetime.fromisoformat(task["CreatedAt"].split(".")[0]).replace(tzinfo=UTC)
        if task["Status"]["State"] == "running" and created >= since:
            return True
    return False


def hub_answers() -> bool:
    try:
        return requests.get(f"{HUB_URL}/hub/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def restart(service: str) -> float:
    """Force-update a stack service; return the monotonic time at which its new task answers."""
    client = docker.from_env()
    since = datetime.now(UTC).replace(microsecond=0)
    client.services.get(service).force_update()
    deadline = time.monotonic() + 120
    while not (running_task_since(client, service, since) and hub_answers()):
        assert time.monotonic() < deadline, f"{service} did not come back within 120 s"
        time.sleep(0.2)
    return time.monotonic()


def wait_until_all(users: list[HubUser], check: Callable[[HubUser], bool], limit: float) -> float:
    """Seconds until `check` holds for every user (each retried as a user would); fails after `limit`."""
    started = time.monotonic()
    pending = list(users)
    while pending:
        pending = [u for u in pending if not check(u)]
        assert time.monotonic() - started < limit, f"still failing after {limit} s: {[u.name for u in pending]}"
        if pending:
            time.sleep(0.5)
    return time.monotonic() - started


def test_twenty_servers_survive_a_hub_restart_and_are_found_again(running: list[HubUser]) -> None:
    client = docker.from_env()
    services = {u.name: client.services.get(f"jupyter-{u.name}").id for u in running}
    restart("jovial_hub")
    for user in running:
        server = user.model()["servers"][""]
        assert server["ready"], f"{user.name}'s server is not ready after the hub restart: {server}"
        assert client.services.get(f"jupyter-{user.name}").id == services[user.name]  # not recreated
    # Servers check tokens with the hub, whose new address they learn within 10 s (aiohttp's DNS cache).
    took = wait_until_all(running, HubUser.server_answers, 30)
    print(f"all {len(running)} servers answered through the proxy {took:.1f} s after the hub came back")
    for user in running:  # the browser session (cookie) survives: the hub page, not the login page
        home = user.session.get(f"{HUB_URL}/hub/home", allow_redirects=False, timeout=30)
        assert home.status_code == 200, f"{user.name}'s session was lost: HTTP {home.status_code}"


def test_every_route_comes_back_after_a_proxy_restart(running: list[HubUser]) -> None:
    assert all(u.server_answers() for u in running)
    restart("jovial_proxy")
    took = wait_until_all(running, HubUser.server_answers, ROUTE_CHECK_INTERVAL - 5)
    print(f"all {len(running)} routes were back {took:.1f} s after the new proxy answered")


def test_a_server_that_moved_while_the_hub_was_down_is_found_at_its_new_address() -> None:
    """Swarm restarts a user's server at a new address while the hub is down (here: its container
    killed while the hub service is scaled to 0). The hub that comes back must look for it where
    it runs now, not at the address in its database, where it would wait and then shut it down."""
    client = docker.from_env()
    name, hub = "student21", client.services.get("jovial_hub")
    remove_servers_of(name)
    user = HubUser(name)
    try:
        user.start(SMALL)
        user.wait_ready()
        assert user.run_in_terminal("echo still-here > ~/moved-while-the-hub-was-down") == (0, "")
        (container,) = client.containers.list(filters={"label": f"jovial.user={name}"})
        old_address = next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
        hub.scale(0)
        deadline = time.monotonic() + 60
        while client.containers.list(filters={"label": "com.docker.swarm.service.name=jovial_hub"}):
            assert time.monotonic() < deadline, "the hub's container did not stop"
            time.sleep(0.5)
        container.kill()  # Swarm starts her server again (restart policy: on failure), elsewhere on the network
        while not (moved := client.containers.list(filters={"label": f"jovial.user={name}"})):
            assert time.monotonic() < deadline, "Swarm did not start her server again"
            time.sleep(0.5)
        new_address = next(iter(moved[0].attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
        assert new_address != old_address
        since = int(time.time())
        hub.reload()  # scaling changed the service's version
        hub.scale(1)
        deadline = time.monotonic() + 120
        while not hub_answers():
            assert time.monotonic() < deadline, "the hub did not come back within 120 s"
            time.sleep(0.5)
        # The hub serves while it checks the servers it had: hers is "pending check" until it answers
        # (at the address in the database it never would, and after http_timeout the hub stops it).
        while (server := user.model()["servers"].get("")) and server["pending"] == "check":
            assert time.monotonic() < deadline, "the restarted hub was still checking her server after 120 s"
            time.sleep(0.5)
        assert server and server["ready"], f"the restarted hub did not keep her server: {server}"
        wait_until_all([user], HubUser.server_answers, 60)
        assert user.run_in_terminal("cat ~/moved-while-the-hub-was-down") == (0, "still-here")
        log = hub_log(client, since)
        relocated = f"had invalid url http://{old_address}:8888/user/{name}/. Updating to http://{new_address}:8888/user/{name}/"
        assert relocated in log, log[-3000:]
        assert "does not appear to be running" not in log
    finally:
        hub.reload()
        if hub.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] != 1:
            hub.scale(1)
            deadline = time.monotonic() + 120
            while not hub_answers() and time.monotonic() < deadline:
                time.sleep(0.5)
        try:
            user.stop()
        finally:
            remove_servers_of(name)
            (FS_ROOT / "home" / name / "moved-while-the-hub-was-down").unlink(missing_ok=True)
