"""A name is not an owner: the Swarm backend and the spawner read an object's jovial.user and
jovial.server labels before they report on it or remove it. A service of the server's name that
Jovial did not make for that server (a site's own, one labelled for another user) is never removed,
counts as not this server's, and a start that finds it fails with a message saying so. A server
started before object names got their 128-bit hash is still found and removed by its old name.

The Swarm backend is the real one, over an in-memory Docker API (tests/unit/fake_docker.py)."""

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from jovial.backends.ownership import NameLocks, is_removable_file, owner_of, why_not_owned
from jovial.backends.swarm import SwarmBackend
from jovial.errors import NameTaken
from jovial.names import server_object_name
from jovial.spawner import JovialSpawner
from jovial.spec import ServerOwner
from tests.unit.fake_docker import FakeDocker, labels_of

LOG = logging.getLogger("jovial.tests.ownership")
ALICE = ServerOwner("alice", "")
TAKEN = "A service named jupyter-alice exists that Jovial did not make for you; ask an administrator."


def test_only_the_exact_user_and_server_labels_make_an_object_someones_server() -> None:
    assert owner_of(labels_of(ALICE, "jupyter-alice")) == ALICE
    assert owner_of({"jovial.user": "alice"}) is None  # not jovial.managed
    assert owner_of({"jovial.managed": "true"}) is None
    assert why_not_owned(labels_of(ALICE, "jupyter-alice"), ALICE) is None
    assert why_not_owned({}, ALICE) == "it does not carry Jovial's labels jovial.managed=true and jovial.user"
    assert why_not_owned(labels_of(ServerOwner("bob", ""), "x"), ALICE) == "it is labelled for user 'bob', server ''"
    assert why_not_owned(labels_of(ServerOwner("alice", "gpu"), "x"), ALICE) == "it is labelled for user 'alice', server 'gpu'"
    # Configs: the owner's, or those of a Jovial that labelled them with jovial.object only; not another's.
    assert is_removable_file(labels_of(ALICE, "jupyter-alice"), ALICE)
    assert is_removable_file({"jovial.object": "jupyter-alice"}, ALICE)
    assert not is_removable_file(labels_of(ServerOwner("bob", ""), "jupyter-alice"), ALICE)


async def test_name_locks_let_one_call_at_a_time_hold_a_name_and_forget_names_nobody_holds() -> None:
    locks, order = NameLocks(), []

    async def hold(name: str, tag: str) -> None:
        async with locks.held(name):
            order.append(f"{tag} in")
            await asyncio.sleep(0.01)
            order.append(f"{tag} out")

    await asyncio.gather(hold("jupyter-alice", "remove"), hold("jupyter-alice", "launch"), hold("jupyter-bob", "other"))
    assert order.index("remove out") < order.index("launch in")
    assert locks._locks == {} and locks._holders == {}


@pytest.fixture
async def docker_and_backend(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeDocker, SwarmBackend]]:
    """The real SwarmBackend over the fake Docker API, as the hub's one backend."""
    docker = FakeDocker()
    backend = SwarmBackend(docker, LOG)  # type: ignore[arg-type]
    monkeypatch.setitem(JovialSpawner._backends, "swarm", backend)
    yield docker, backend
    await backend.close()


async def test_remove_leaves_a_service_that_is_not_jovials_for_that_server_and_says_so(docker_and_backend, caplog) -> None:
    docker, backend = docker_and_backend
    docker.add_service("jupyter-alice", {"com.example.site": "monitoring"})  # a site's own service
    with pytest.raises(NameTaken, match=TAKEN):
        await backend.remove("jupyter-alice", ALICE)
    assert docker.service_names() == ["jupyter-alice"] and not [c for c in docker.calls if c[0].startswith("remove")]
    assert ("Not removing the service jupyter-alice for user 'alice', server '': it does not carry Jovial's labels "
            "jovial.managed=true and jovial.user") in caplog.text

    docker.services_by_id.clear()
    docker.add_service("jupyter-alice", labels_of(ServerOwner("bob", ""), "jupyter-alice"))  # labelled for another user
    with pytest.raises(NameTaken):
        await backend.remove("jupyter-alice", ALICE)
    assert docker.service_names() == ["jupyter-alice"]
    assert "it is labelled for user 'bob', server ''" in caplog.text


async def test_remove_goes_to_the_inspected_id_with_its_configs_and_no_one_elses(docker_and_backend) -> None:
    docker, backend = docker_and_backend
    own = docker.add_config("jovial-passwd-" + "a" * 20, labels_of(ALICE, "jupyter-alice"))
    legacy = docker.add_config("jovial-group-" + "b" * 20, {"jovial.object": "jupyter-alice"})  # before configs carried owners
    docker.add_config("jovial-group-" + "c" * 20, {**labels_of(ServerOwner("bob", ""), "x"), "jovial.object": "jupyter-alice"})
    service_id = docker.add_service("jupyter-alice", labels_of(ALICE, "jupyter-alice"), (own, legacy))
    await backend.remove("jupyter-alice", ALICE)
    assert ("remove_service", service_id) in docker.calls  # the ID it inspected, never the name again
    assert docker.service_names() == [] and docker.config_names() == ["jovial-group-" + "c" * 20]
    await backend.remove("jupyter-alice", ALICE)  # quiet when nothing is left


async def test_status_of_a_service_labelled_for_someone_else_is_not_this_servers(docker_and_backend) -> None:
    docker, backend = docker_and_backend
    docker.add_service("jupyter-alice", labels_of(ServerOwner("bob", ""), "jupyter-alice"))
    status = await backend.status("jupyter-alice", ALICE)
    assert not status.alive and status.reason == TAKEN and status.address is None
    assert (await backend.status("jupyter-alice", ServerOwner("bob", ""))).alive  # it is bob's
    assert [s.owner for s in await backend.first_listed()] == [ServerOwner("bob", "")]


# --- the spawner ------------------------------------------------------------------------------------

async def no_auth_state() -> None:
    return None


def make_spawner(site: Path, username: str) -> JovialSpawner:
    config = Config()
    config.JovialSpawner.update(
        identities={username: {"uid": 10001, "gid": 10001}},
        ldap_url="",
        shared_fs_root=str(site),
        home_path_template=f"{site}/home/{{username}}",
        image="jovial/singleuser:dev",
    )
    user = SimpleNamespace(name=username, escaped_name=username, url=f"/user/{username}/", server=None, get_auth_state=no_auth_state)
    hub = SimpleNamespace(public_host="", api_url="http://hub:8081/hub/api", base_url="/hub/")
    spawner = JovialSpawner(config=config, user=user, hub=hub, _deprecated_db_session=None, api_token="test-token")
    spawner.user_options = {}
    return spawner


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path


@pytest.mark.skipif(os.geteuid() != 0, reason="the home is chowned to the user (CI runs as root)")
async def test_a_start_that_finds_its_name_taken_fails_with_the_reason_and_leaves_that_service(site, docker_and_backend, caplog) -> None:
    docker, _ = docker_and_backend
    docker.add_service("jupyter-alice", {})  # a site's own service, named like alice's server
    spawner = make_spawner(site, "alice")
    with pytest.raises(NameTaken, match=TAKEN) as refused:
        await spawner.start()
    assert refused.value.status_code == 500  # the site's side: an administrator must act
    assert docker.service_names() == ["jupyter-alice"] and ("create_service", "jupyter-alice") not in docker.calls
    assert "Not removing the service jupyter-alice for user 'alice', server ''" in caplog.text
    assert [e async for e in spawner.progress()]  # the progress stream ends: the hub's bar is not left waiting


async def test_a_server_whose_name_another_service_took_ends_with_the_reason_and_that_service_stays(site, docker_and_backend) -> None:
    docker, _ = docker_and_backend
    bobs = docker.add_service("jupyter-alice", labels_of(ServerOwner("bob", ""), "jupyter-alice"))
    spawner = make_spawner(site, "alice")
    spawner.load_state({"object_id": "id-of-her-old-service", "object_name": "jupyter-alice"})
    assert await spawner.poll() == spawner.last_end and TAKEN in spawner.last_end
    assert spawner.object_id == "" and bobs in docker.services_by_id
    await spawner.stop()  # as the hub's stop would: nothing of hers to remove, and bob's stays
    assert bobs in docker.services_by_id


async def test_a_server_started_with_an_old_style_name_is_still_found_and_removed_after_the_upgrade(site, docker_and_backend) -> None:
    """Before the upgrade, odd names had a 10-digit hash; the spawner's state kept the running
    server's name, so the upgraded hub finds it, and stops it, by that name; the next start takes
    the new name."""
    docker, _ = docker_and_backend
    username = "Alice.Smith@example.org"
    old_name = "jupyter-alice-smith-example-org--0123456789"
    owner = ServerOwner(username, "")
    files = [
        docker.add_config(f"jovial-{key}-{digit * 20}", {"jovial.object": old_name}) for key, digit in (("passwd", "1"), ("group", "2"))
    ]
    service_id = docker.add_service(old_name, labels_of(owner, old_name), tuple(files), running_at="10.0.1.7")
    spawner = make_spawner(site, username)
    spawner.load_state({"object_id": service_id, "object_name": old_name})  # DockerSpawner's persisted state
    assert spawner.object_name == old_name != server_object_name(username)
    assert await spawner.poll() is None  # running: found by its old name
    assert spawner.get_state()["object_name"] == old_name  # and kept so while it runs
    await spawner.stop()
    assert docker.service_names() == [] and docker.config_names() == [] and spawner.object_id == ""
    spawner.clear_state()  # what the hub does after a stop and before a start
    assert spawner.object_name == server_object_name(username) and len(spawner.object_name.rpartition("--")[2]) == 32
