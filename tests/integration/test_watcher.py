"""The Swarm watcher on the real swarm: status costs no Docker call, relists cost the same for 1
or 5 servers, a fresh backend (a restarted hub) finds every running server on its first list,
respawns reach their new address, and the events stream is followed again after it drops. (The
hub's route following a server that Swarm restarted: test_server_deaths.py.)

They talk to SwarmBackend directly, through a counting proxy in front of the Docker socket;
their servers run `sleep` instead of JupyterLab (the watcher only needs tasks). Needs the
deployed stack (tests/run brings it up): its overlay network `jovial`, its hub, and the local
image jovial/singleuser:dev.
"""

import asyncio
import dataclasses
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import docker
import pytest

from jovial.backends.swarm import SwarmBackend
from jovial.names import server_object_name
from jovial.spec import ResourceSpec, ServerSpec
from tests.docker_counter import DockerCounter
from tests.hub import FS_ROOT, remove_servers_of
from tests.specs import server_spec, site_settings

pytestmark = pytest.mark.swarm

LOG = logging.getLogger("jovial.tests.watcher")
RELIST_INTERVAL = 0.5
WINDOW = 3.0
RELIST_CALLS = {"GET /services", "GET /tasks"}
FS_LABEL = {os.environ.get("JOVIAL_FS_LABEL", "jovial.fs"): os.environ.get("JOVIAL_FS_LABEL_VALUE", "lustre")}


@pytest.fixture(scope="module")
def counter() -> Iterator[DockerCounter]:
    with DockerCounter() as running:
        yield running


@pytest.fixture
def homes() -> Iterator[Path]:
    """A directory of homes of made-up users below the shared filesystem's home root."""
    path = Path(tempfile.mkdtemp(prefix="watcher-", dir=FS_ROOT / "home"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def usernames() -> Iterator[list[str]]:
    """Made-up usernames for a test; every service and config made for them is removed afterwards."""
    names: list[str] = []
    try:
        yield names
    finally:
        remove_servers_of(*names)


@pytest.fixture
async def make_backend(counter: DockerCounter) -> AsyncIterator[Callable[..., SwarmBackend]]:
    """SwarmBackends talking through the counter; their watchers are stopped afterwards."""
    made: list[SwarmBackend] = []

    def make(relist_interval: float = RELIST_INTERVAL) -> SwarmBackend:
        made.append(SwarmBackend(docker.APIClient(base_url=counter.url, version="auto"), LOG, relist_interval))
        return made[-1]

    try:
        yield make
    finally:
        for backend in made:
            await backend.close()
            backend.client.close()


@pytest.fixture
def make_spec(homes: Path, usernames: list[str]) -> Callable[..., ServerSpec]:
    """The spec of a new made-up user's server (its home made), running `command`."""
    site = site_settings(home_source_template=f"{homes}/{{username}}", resources=ResourceSpec(cpu_limit=0.2, mem_limit=64 * 1024**2))

    def make(command: tuple[str, ...] = ("sleep", "infinity"), node_labels: dict[str, str] = FS_LABEL) -> ServerSpec:
        username = f"wt{secrets.token_hex(4)}"
        usernames.append(username)
        spec_site = dataclasses.replace(site, node_labels=node_labels)
        return server_spec(server_object_name(username), spec_site, command, username=username, uid=42000 + len(usernames))

    return make


async def start(backend: SwarmBackend, *specs: ServerSpec) -> list[str]:
    """Launch the servers, wait for all of them together; their addresses."""
    for spec in specs:
        await backend.launch(spec)
    return [ip for ip, _ in await asyncio.gather(*(backend.wait_running(s, lambda m, p: None, 60) for s in specs))]


def calls_since(counter: DockerCounter, before: Counter[str]) -> Counter[str]:
    return counter.counts() - before


async def relist_calls_while_polling(counter: DockerCounter, backend: SwarmBackend, specs: list[ServerSpec]) -> Counter[str]:
    """Docker calls during WINDOW seconds of the hub polling every server ten times a second."""
    await asyncio.sleep(1)  # the fast relists of the spawn are over
    before = counter.counts()
    deadline = time.monotonic() + WINDOW
    while time.monotonic() < deadline:
        assert all([(await backend.status(s.name, s.owner)).alive for s in specs])
        await asyncio.sleep(0.1)
    return calls_since(counter, before)


async def test_status_makes_no_docker_call_and_relists_cost_the_same_for_1_or_5_servers(
    counter: DockerCounter, make_backend: Callable[..., SwarmBackend], make_spec: Callable[..., ServerSpec]
) -> None:
    backend = make_backend()
    specs = [make_spec() for _ in range(5)]
    addresses = await start(backend, specs[0])
    one = await relist_calls_while_polling(counter, backend, specs[:1])
    addresses += await start(backend, *specs[1:])
    five = await relist_calls_while_polling(counter, backend, specs)

    LOG.info("Docker calls in %.0f s of polling: 1 server %s, 5 servers %s", WINDOW, dict(one), dict(five))
    most = WINDOW / RELIST_INTERVAL + 2
    for calls in (one, five):
        assert set(calls) <= RELIST_CALLS, calls
        # a relist in flight at either end of the window is counted by half
        assert abs(calls["GET /services"] - calls["GET /tasks"]) <= 1 and max(calls.values()) <= most, calls

    await backend.watcher.newer_than(backend.watcher.relist_soon(), 10)
    before = counter.counts()
    for _ in range(200):
        statuses = [await backend.status(s.name, s.owner) for s in specs]
    assert calls_since(counter, before) == Counter()
    assert [s.address for s in statuses] == addresses and all(s.alive for s in statuses)

    restarted = make_backend()
    before = counter.counts()
    found = [await restarted.status(s.name, s.owner) for s in specs]
    assert [s.address for s in found] == addresses and all(s.alive for s in found)
    first_list = calls_since(counter, before)
    assert set(first_list) <= {*RELIST_CALLS, "GET /nodes", "GET /events"}, first_list
    assert first_list["GET /tasks"] <= 2, first_list


async def test_a_respawn_under_the_same_name_reaches_running_at_its_new_address(
    make_backend: Callable[..., SwarmBackend], make_spec: Callable[..., ServerSpec]
) -> None:
    backend = make_backend()
    spec = make_spec()
    api = docker.APIClient(version="auto")
    addresses = []
    for _ in range(3):
        await backend.remove(spec.name, spec.owner)
        service_id = await backend.launch(spec)
        address, _ = await backend.wait_running(spec, lambda m, p: None, 60)
        running = [t for t in api.tasks(filters={"service": service_id}) if t["Status"]["State"] == "running"]
        assert [a["Addresses"][0].split("/")[0] for a in running[0]["NetworksAttachments"]] == [address]
        assert (await backend.status(spec.name, spec.owner)).address == address
        addresses.append(address)
    api.close()
    LOG.info("addresses of three spawns of %s: %s", spec.name, addresses)


async def test_the_events_stream_is_followed_again_after_the_engine_dropped_it(
    counter: DockerCounter,
    make_backend: Callable[..., SwarmBackend],
    make_spec: Callable[..., ServerSpec],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With periodic relists out of the way (an hour apart), only events can make the watcher see
    a new service: after the connections drop, it must reconnect, relist, and follow events again."""
    streams = counter.counts()["GET /events"]
    backend = make_backend(relist_interval=3600)
    await backend.watcher.newer_than(0, 10)
    deadline = time.monotonic() + 10
    while counter.counts()["GET /events"] < streams + 1:
        assert time.monotonic() < deadline, "the watcher never asked for events"
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # the relist the connection asked for is over
    seq = (await backend.watcher.newer_than(0, 10)).seq
    counter.drop_connections()
    deadline = time.monotonic() + 10
    while counter.counts()["GET /events"] < streams + 2:
        assert time.monotonic() < deadline, "the watcher did not reconnect to the events stream"
        await asyncio.sleep(0.1)
    assert "The Docker events stream ended; reconnecting" in caplog.text
    assert await backend.watcher.newer_than(seq, 10), "no relist of what was missed while disconnected"
    spec = make_spec()
    await backend.launch(spec)
    deadline = time.monotonic() + 10
    while spec.name not in (await backend.watcher.newer_than(0, 10)).services:
        assert time.monotonic() < deadline, "the service event after the reconnection was missed"
        await asyncio.sleep(0.1)
