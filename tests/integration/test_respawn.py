"""The same user stops and starts again at once, three times: each spawn is ready in seconds and
answers through the proxy at its new address (no stale DNS or route from the previous server)."""

import time

import docker
import pytest

from tests.hub import SMALL, HubUser, remove_servers_of

pytestmark = pytest.mark.swarm
READY_WITHIN = 30  # seconds: "ready in seconds", far below the 120 s start timeout; not a benchmark


def test_three_respawns_in_a_row_are_each_ready_in_seconds() -> None:
    client = docker.from_env()
    remove_servers_of("carol")
    user = HubUser("carol")
    addresses = []
    try:
        for _ in range(3):
            user.stop()
            started = time.monotonic()
            user.start(SMALL)
            user.wait_ready(timeout=READY_WITHIN)
            while not user.server_answers():
                assert time.monotonic() - started < READY_WITHIN, "the new server does not answer through the proxy"
                time.sleep(0.2)
            task = client.services.get("jupyter-carol").tasks({"desired-state": "running"})[0]
            addresses.append(task["NetworksAttachments"][0]["Addresses"][0])
        assert len(set(addresses)) == 3, addresses  # each respawn was a new task at a new address
    finally:
        user.stop()
        remove_servers_of("carol")
