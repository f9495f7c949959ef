"""Fixtures shared by the integration tests on the real single-node swarm."""

import logging
from collections.abc import AsyncIterator

import docker
import pytest

from jovial.backends.swarm import SwarmBackend


@pytest.fixture
async def swarm_backend() -> AsyncIterator[SwarmBackend]:
    """A Swarm backend of its own (as a hub process has one), its watcher closed afterwards."""
    backend = SwarmBackend(docker.APIClient(version="auto"), logging.getLogger("jovial.tests"))
    yield backend
    await backend.watcher.close()


def remove_objects_named(name: str) -> None:
    """Remove a test's service and configs by their jovial.object label, even when the test failed."""
    client = docker.from_env()
    for service in client.services.list(filters={"label": f"jovial.object={name}"}):
        service.remove()
    for config in client.configs.list(filters={"label": f"jovial.object={name}"}):
        config.remove()
