"""The site's storage layout inside a real server: home, group project directories (writable by the
group), read-only data collections, and a private scratch space. Backend driven on the real swarm."""

import os
import shutil
from collections.abc import AsyncIterator, Iterator

import docker
import pytest

from jovial.backends.swarm import SwarmBackend
from jovial.spec import DataCollection
from tests.hub import wait_for_no_containers
from tests.integration.conftest import remove_objects_named
from tests.specs import FS_ROOT, TEST_UID, TEST_USER, server_spec, site_settings

pytestmark = pytest.mark.swarm
NAME = "jupyter-jovial-mounts-test"


@pytest.fixture
def layout() -> Iterator[dict[str, str]]:
    paths = {"project": f"{FS_ROOT}/projects/testers", "data": f"{FS_ROOT}/data/jovial-test-collection"}
    os.makedirs(paths["project"], exist_ok=True)
    os.chown(paths["project"], 0, 19002)
    os.chmod(paths["project"], 0o2770)
    os.makedirs(paths["data"], exist_ok=True)
    with open(f"{paths['data']}/catalogue.csv", "w") as f:
        f.write("ra,dec\n10.68,41.27\n")
    yield paths
    shutil.rmtree(paths["project"], ignore_errors=True)
    shutil.rmtree(paths["data"], ignore_errors=True)


@pytest.fixture
async def backend(swarm_backend: SwarmBackend) -> AsyncIterator[SwarmBackend]:
    yield swarm_backend
    remove_objects_named(NAME)
    wait_for_no_containers(docker.from_env(), TEST_USER)


def run(container: docker.models.containers.Container, command: str) -> tuple[int, str]:
    """Run as the server's own user (uid, gid and supplementary groups of the service)."""
    result = container.exec_run(["sh", "-c", command])
    return result.exit_code, result.output.decode()


async def test_projects_data_and_scratch(backend: SwarmBackend, layout: dict[str, str]) -> None:
    site = site_settings(
        project_source_template=f"{FS_ROOT}/projects/{{group}}",
        data_collections=(DataCollection(layout["data"], "/data/catalogue"),),
        scratch_bytes=64 * 2**20,
    )
    spec = server_spec(NAME, site, project_groups=("testers",))
    await backend.launch(spec)
    await backend.wait_running(spec, lambda m, p: None, timeout=60)
    container = docker.from_env().containers.list(filters={"label": f"jovial.object={NAME}"})[0]
    assert run(container, "id -u; id -G")[1].split() == [str(TEST_UID), str(TEST_UID), "19002"]
    assert run(container, "echo shared > /projects/testers/note && stat -c %g /projects/testers/note")[1].strip() == "19002"
    assert run(container, "cat /data/catalogue/catalogue.csv")[1].startswith("ra,dec")
    code, output = run(container, "touch /data/catalogue/mine 2>&1")
    assert code != 0 and "Read-only file system" in output
    assert run(container, "echo ok > /scratch/tmp && cat /scratch/tmp")[1].strip() == "ok"
    assert "tmpfs" in run(container, "grep ' /scratch ' /proc/mounts")[1]
