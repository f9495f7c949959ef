"""Fixtures shared by the integration tests on the real single-node swarm."""

import logging
import shutil
from collections.abc import AsyncIterator, Iterator

import docker
import pytest

from jovial.backends.swarm import SwarmBackend
from tests.hub import FS_ROOT
from tests.specs import TEST_USER


@pytest.fixture
async def swarm_backend() -> AsyncIterator[SwarmBackend]:
    """A Swarm backend of its own (as a hub process has one), closed afterwards."""
    backend = SwarmBackend(docker.APIClient(version="auto"), logging.getLogger("jovial.tests"))
    yield backend
    await backend.close()


@pytest.fixture(scope="session", autouse=True)
def test_user_home() -> Iterator[None]:
    """The home that tests/specs.py makes for its test user is removed when the tests end."""
    yield
    shutil.rmtree(FS_ROOT / "home" / TEST_USER, ignore_errors=True)


def remove_objects_named(name: str) -> None:
    """Remove a test's service and configs by their jovial.object label, even when the test failed."""
    client = docker.from_env()
    for service in client.services.list(filters={"label": f"jovial.object={name}"}):
        service.remove()
    for config in client.configs.list(filters={"label": f"jovial.object={name}"}):
        config.remove()
