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
from datetime import datetime, timezone

import docker
import pytest
import requests

from tests.hub import HUB_URL, HubUser, remove_servers_of

pytestmark = pytest.mark.swarm
USERS = [f"student{i:02d}" for i in range(1, 21)]
ROUTE_CHECK_INTERVAL = 30  # the hub's last_activity_interval (stacks/jupyterhub_config.py)


@pytest.fixture(scope="module")
def running() -> Iterator[list[HubUser]]:
    remove_servers_of(*USERS)
    with ThreadPoolExecutor(len(USERS)) as pool:
        users = list(pool.map(HubUser, USERS))
        try:
            list(pool.map(HubUser.start, users))
            list(pool.map(HubUser.wait_ready, users))
            yield users
        finally:
            list(pool.map(HubUser.stop, users))
            remove_servers_of(*USERS)


def running_task_since(client: docker.DockerClient, service: str, since: datetime) -> bool:
    for task in client.services.get(service).tasks({"desired-state": "running"}):
        created = datetime.fromisoformat(task["CreatedAt"].split(".")[0]).replace(tzinfo=timezone.utc)
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
    since = datetime.now(timezone.utc).replace(microsecond=0)
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
