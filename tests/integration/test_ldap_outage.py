"""The site's LDAP goes down (the dev stack's ldap service scaled to 0) and comes back.

While it is down: a login fails at once with a page saying the directory is not answering (503,
not "invalid password" and not a hub error), a spawn that needs an identity not yet cached fails
with the reason, and a server already running keeps answering. When it is back, logins and spawns
work again with no restart of anything."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import pytest
import requests

from tests.hub import HUB_URL, SMALL, HubUser, demo_password, post_login, remove_servers_of

pytestmark = pytest.mark.swarm
RUNNING_USER = "alice"
NEW_USER = "student60"  # used by no other test: the hub has not cached its identity


def ldap_tasks_running(client: docker.DockerClient) -> int:
    return sum(t["Status"]["State"] == "running" for t in client.services.get("jovial_ldap").tasks({"desired-state": "running"}))


def ldap_containers(client: docker.DockerClient) -> list:
    return client.containers.list(filters={"label": "com.docker.swarm.service.name=jovial_ldap"})


def scale_ldap(replicas: int) -> None:
    client = docker.from_env()
    client.services.get("jovial_ldap").scale(replicas)
    deadline = time.monotonic() + 60
    while len(ldap_containers(client)) != replicas or ldap_tasks_running(client) != replicas:
        assert time.monotonic() < deadline, f"jovial_ldap did not reach {replicas} running tasks"
        time.sleep(0.5)


@contextmanager
def ldap_down() -> Iterator[None]:
    scale_ldap(0)
    try:
        yield
    finally:
        scale_ldap(1)


@pytest.fixture
def alice_running() -> Iterator[HubUser]:
    remove_servers_of(RUNNING_USER, NEW_USER)
    alice = HubUser(RUNNING_USER)
    alice.start(SMALL)
    alice.wait_ready()
    yield alice
    alice.stop()
    remove_servers_of(RUNNING_USER, NEW_USER)


def test_ldap_outage_is_explained_harms_no_running_server_and_heals_itself(alice_running: HubUser) -> None:
    student = HubUser(NEW_USER)  # logged in before the outage; its server never started
    with ldap_down():
        reply = post_login(requests.Session(), "bob", demo_password())
        assert reply.status_code == 503 and "directory (LDAP) is not answering" in reply.text, reply.status_code
        start = student.api.post(f"{HUB_URL}/hub/api/users/{NEW_USER}/server", json={"user_options": SMALL}, timeout=60)
        if start.status_code == 202:  # still pending: the reason comes in the progress stream
            failure = student.progress_events()[-1]
            assert failure.get("failed") and "cannot be reached" in failure["message"], failure
        else:
            assert start.status_code == 503 and "cannot be reached" in start.text, (start.status_code, start.text)
        assert alice_running.server_answers(), "a running server stopped answering while LDAP was down"

    deadline = time.monotonic() + 60
    while post_login(requests.Session(), "bob", demo_password()).status_code != 302:  # slapd starting
        assert time.monotonic() < deadline, "logins did not work again within 60 s of LDAP coming back"
        time.sleep(1)
    student.start(SMALL)
    assert student.wait_ready()["ready"]
    student.stop()
