"""Servers that can never run fail within seconds, with the reason in words, and leave nothing behind.

Drives the Swarm backend directly on the real single-node swarm (the stack's overlay network must
exist: tests/run brings the stack up). Stock SwarmSpawner waits for its start timeout on all of these.
"""

import time
from collections.abc import AsyncIterator

import docker
import pytest

from jovial.backends.swarm import SwarmBackend
from jovial.errors import LaunchError
from jovial.spec import DataCollection, ResourceSpec, ServerSpec
from tests.hub import wait_for_no_containers
from tests.integration.conftest import remove_objects_named
from tests.specs import FS_ROOT, TEST_USER, server_spec, site_settings

pytestmark = pytest.mark.swarm
NAME = "jupyter-jovial-failure-test"
FAILS_WITHIN = 20  # seconds: "within seconds", far below any start timeout; not a benchmark


@pytest.fixture
async def backend(swarm_backend: SwarmBackend) -> AsyncIterator[SwarmBackend]:
    yield swarm_backend
    remove_objects_named(NAME)


async def fails_fast(backend: SwarmBackend, spec: ServerSpec) -> str:
    """Launch, expect LaunchError within seconds, remove; check nothing is left. The error text."""
    started = time.monotonic()
    await backend.launch(spec)
    try:
        with pytest.raises(LaunchError) as failure:
            await backend.wait_running(spec, lambda message, percent: None, timeout=120)
        assert time.monotonic() - started < FAILS_WITHIN
    finally:
        await backend.remove(spec.name, spec.owner)
    client = docker.from_env()
    assert not client.services.list(filters={"label": f"jovial.object={spec.name}"})
    assert not client.configs.list(filters={"label": f"jovial.object={spec.name}"})
    wait_for_no_containers(client, TEST_USER)
    return str(failure.value)


async def test_no_node_satisfies_the_constraints(backend: SwarmBackend) -> None:
    spec = server_spec(NAME, site_settings(node_labels={"jovial.fs": "nowhere"}))
    assert "No node of the cluster can run your server" in await fails_fast(backend, spec)


async def test_no_node_has_the_resources(backend: SwarmBackend) -> None:
    spec = server_spec(NAME, site_settings(resources=ResourceSpec(cpu_reservation=512.0)))
    assert "insufficient resources" in await fails_fast(backend, spec)


async def test_the_mount_source_is_missing_on_the_node(backend: SwarmBackend) -> None:
    missing = f"{FS_ROOT}/data/not-there"
    spec = server_spec(NAME, site_settings(data_collections=(DataCollection(missing, "/data/x"),)))
    message = await fails_fast(backend, spec)
    assert f"The folder {missing} that your server needs is missing on node" in message


async def test_the_image_is_not_on_the_node(backend: SwarmBackend) -> None:
    spec = server_spec(NAME, site_settings(image="jovial/no-such-image:none"))
    assert "The image jovial/no-such-image:none is not on node" in await fails_fast(backend, spec)


async def test_the_server_exits_at_start_with_its_last_words(backend: SwarmBackend) -> None:
    spec = server_spec(NAME, command=("sh", "-c", "echo 'cannot find my config' >&2; exit 3"))
    message = await fails_fast(backend, spec)
    assert "stopped right after starting (exit code 3)" in message and "cannot find my config" in message
