"""A JovialSpawner whose server can never run, driven on the real swarm without a hub around it:
start() fails within seconds with the reason, and the spawner itself (not the test) removes
every object it made. (The hub's own spawns are covered in test_spawn.py.)"""

import time
from types import SimpleNamespace

import docker
import pytest
from traitlets.config import Config

from jovial.errors import LaunchError
from jovial.spawner import JovialSpawner
from tests.hub import wait_for_no_containers
from tests.integration.conftest import remove_objects_named
from tests.specs import FS_ROOT, TEST_UID, TEST_USER

pytestmark = pytest.mark.swarm


def make_spawner(**settings: object) -> JovialSpawner:
    config = Config()
    config.JovialSpawner.update(
        identities={TEST_USER: {"uid": TEST_UID, "gid": TEST_UID}},
        ldap_url="",
        shared_fs_root=str(FS_ROOT),
        home_path_template=f"{FS_ROOT}/home/{{username}}",
        start_timeout=120,
        check_server_port=False,  # this test runs on the host, which has no route into the overlay network
        **settings,
    )
    user = SimpleNamespace(name=TEST_USER, escaped_name=TEST_USER, url=f"/user/{TEST_USER}/", server=None)
    hub = SimpleNamespace(public_host="", api_url="http://hub:8081/hub/api", base_url="/hub/")
    return JovialSpawner(config=config, user=user, hub=hub, _deprecated_db_session=None, api_token="test-token")


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"image": "jovial/no-such-image:none"}, "The image jovial/no-such-image:none is not on node"),
        ({"image": "jovial/singleuser:dev", "node_labels": {"jovial.fs": "nowhere"}}, "No node of the cluster can run your server"),
    ],
)
async def test_a_failed_start_leaves_nothing_behind(settings: dict, reason: str) -> None:
    spawner = make_spawner(**settings)
    name = spawner.object_name
    try:
        started = time.monotonic()
        with pytest.raises(LaunchError, match=reason):
            await spawner.start()
        assert time.monotonic() - started < 20  # "within seconds": far below start_timeout; not a benchmark
        client = docker.from_env()
        assert not client.services.list(filters={"label": f"jovial.object={name}"})
        assert not client.configs.list(filters={"label": f"jovial.object={name}"})
        wait_for_no_containers(client, TEST_USER)
        assert spawner.object_id == ""
    finally:
        remove_objects_named(name)
        await (await spawner.backend()).close()
        JovialSpawner._backends.clear()
