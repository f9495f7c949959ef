"""After a hub restart, the servers no spawner of the hub owns are removed once the hub has checked
the servers it restored: the policy (pure), the sweep (with a recording backend), and the whole of
it as JupyterHub drives it (init_spawners' flags on real JovialSpawners, the real Swarm backend over
the in-memory Docker API of tests/unit/fake_docker.py): a spawn the restart interrupted leaves
nothing, a running recorded server and a spawn of the new hub are kept, and her next spawn works."""

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from traitlets.config import Config

from jovial import orphans as orphans_module
from jovial.backends import ListedServer
from jovial.backends.swarm import SwarmBackend
from jovial.errors import NameTaken
from jovial.orphans import hub_has_checked_its_servers, orphans, owned_object_names, sweep_orphans
from jovial.spawner import JovialSpawner
from jovial.spec import ServerOwner
from tests.restored_hub import check, record_running, spawn
from tests.unit.fake_docker import FakeDocker, labels_of

LOG = logging.getLogger("jovial.tests.orphans")
ALICE, BOB, CAROL = ServerOwner("alice", ""), ServerOwner("bob", ""), ServerOwner("carol", "")


def spawner(name: str = "", object_name: str = "", pending: str | None = None, active: bool = True) -> SimpleNamespace:
    return SimpleNamespace(name=name, object_name=object_name, pending=pending, active=active or bool(pending))


def user(name: str, *spawners: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(name=name, spawners={s.name: s for s in spawners})


def test_a_listed_server_is_an_orphan_unless_its_owners_active_spawner_uses_that_very_name() -> None:
    listed = [
        ListedServer("jupyter-alice", ALICE),  # her spawner runs it
        ListedServer("jupyter-bob", BOB),  # no spawner of his is active
        ListedServer("jupyter-carol--0123456789", CAROL),  # her spawner uses another name
        ListedServer("jupyter-alice-gpu--abc", ServerOwner("alice", "gpu")),  # her named server is not running
    ]
    owned = {ALICE: "jupyter-alice", CAROL: "jupyter-carol"}
    assert [s.name for s in orphans(listed, owned)] == ["jupyter-bob", "jupyter-carol--0123456789", "jupyter-alice-gpu--abc"]
    assert orphans([], owned) == [] and orphans(listed[:1], owned) == []


def test_a_labelled_server_not_named_as_jovial_names_them_is_another_hubs_and_no_orphan() -> None:
    """The benchmarks' stock hub labels its services stock-<user> so that the docker-proxy makes them."""
    assert orphans([ListedServer("stock-bob", BOB)], {}) == []


def test_the_hubs_owned_names_are_its_active_spawners_not_being_stopped_and_it_has_checked_when_none_is_pending_check() -> None:
    users = [
        user("alice", spawner("", "jupyter-alice"), spawner("gpu", "jupyter-alice-gpu--x", active=False)),
        user("bob", spawner("", "jupyter-bob", pending="spawn")),
        user("carol", spawner("", "jupyter-carol", pending="stop")),  # its own stop removes what it has
        user("dave", spawner("", "jupyter-dave", pending="check")),
    ]
    assert owned_object_names(users) == {ALICE: "jupyter-alice", BOB: "jupyter-bob", ServerOwner("dave", ""): "jupyter-dave"}
    assert not hub_has_checked_its_servers(users)
    assert hub_has_checked_its_servers(users[:3])


class RecordingBackend:
    """first_listed() answers `listed`; remove() records, and raises for the names in `refuse`."""

    def __init__(self, listed: list[ListedServer], refuse: frozenset[str] = frozenset()) -> None:
        self.listed = listed
        self.refuse = refuse
        self.removed: list[tuple[str, ServerOwner]] = []
        self.on_remove: list[Any] = []

    async def first_listed(self) -> list[ListedServer]:
        return self.listed

    async def remove(self, name: str, owner: ServerOwner) -> None:
        self.removed.append((name, owner))
        for hook in self.on_remove:
            hook()
        if name in self.refuse:
            raise NameTaken("service", name)


@pytest.fixture
def quick_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orphans_module, "CHECK_INTERVAL", 0.02)


async def test_the_sweep_waits_for_the_hubs_checks_then_removes_each_orphan_looking_again_before_each(quick_checks, caplog) -> None:
    caplog.set_level("INFO", logger=LOG.name)
    checking = spawner("", "jupyter-dave", pending="check")
    alice, bob = user("alice"), user("bob")
    users = {1: alice, 2: bob, 3: user("dave", checking)}
    listed = [ListedServer("jupyter-alice", ALICE), ListedServer("jupyter-bob", BOB), ListedServer("jupyter-dave", ServerOwner("dave", ""))]
    backend = RecordingBackend(listed, refuse=frozenset({"jupyter-alice"}))
    # While alice's orphan is being removed, bob starts his server again: his is left to his spawn.
    backend.on_remove.append(lambda: bob.spawners.setdefault("", spawner("", "jupyter-bob", pending="spawn")))
    sweep = asyncio.create_task(sweep_orphans(backend, users, LOG))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)
    assert backend.removed == [] and not sweep.done()  # the hub is still checking dave's server
    checking.pending = None  # dave's check ends: it runs
    await asyncio.wait_for(sweep, 2)
    assert backend.removed == [("jupyter-alice", ALICE)]
    assert "Removing jupyter-alice (user 'alice', server ''): no spawner of this hub owns it" in caplog.text
    assert "Could not remove jupyter-alice, which no spawner of this hub owns" in caplog.text  # logged, not raised
    assert "Servers found at start that no spawner of this hub owns: 2 of 3" in caplog.text


async def test_the_sweep_never_raises(caplog) -> None:
    class Broken(RecordingBackend):
        async def first_listed(self) -> list[ListedServer]:
            raise ConnectionError("the engine is gone")

    await sweep_orphans(Broken([]), {}, LOG)  # type: ignore[arg-type]
    assert "Looking for servers that no spawner of this hub owns failed" in caplog.text


# --- as JupyterHub drives it -------------------------------------------------------------------------

async def no_auth_state() -> None:
    return None


class Hub:
    """What a spawner sees of a JupyterHub: its users (the tornado settings' "users", a UserDict) and
    their spawners, which are real JovialSpawners on the real Swarm backend over `docker`."""

    def __init__(self, docker: FakeDocker, site: Path) -> None:
        self.docker = docker
        self.site = site
        self.users: dict[int, SimpleNamespace] = {}

    def spawner(self, username: str, state: dict[str, str] | None = None, recorded: bool = False) -> JovialSpawner:
        """The spawner of `username`'s default server, its state loaded; `recorded`: the database says
        the server runs (JupyterHub's orm_spawner.server)."""
        config = Config()
        config.JovialSpawner.update(
            identities={username: {"uid": 10001 + len(self.users), "gid": 10001 + len(self.users)}},
            ldap_url="",
            shared_fs_root=str(self.site),
            home_path_template=f"{self.site}/home/{{username}}",
            image="jovial/singleuser:dev",
        )
        hub_user = SimpleNamespace(name=username, escaped_name=username, url=f"/user/{username}/", server=None,
                                   get_auth_state=no_auth_state, settings={"users": self.users}, spawners={})
        hub = SimpleNamespace(public_host="", api_url="http://hub:8081/hub/api", base_url="/hub/")
        made = JovialSpawner(config=config, user=hub_user, hub=hub, _deprecated_db_session=None, api_token="t")
        made.user_options = {}
        made.load_state(state or {})
        if recorded:
            record_running(made)
        hub_user.spawners[""] = made
        self.users[len(self.users) + 1] = hub_user
        return made


@pytest.fixture
async def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, quick_checks: None) -> AsyncIterator[Hub]:
    """A fresh hub process: no backend yet; the one it makes is the real Swarm backend over a fake Docker API."""
    docker = FakeDocker()

    async def make_backend(self: JovialSpawner) -> SwarmBackend:
        return SwarmBackend(docker, LOG)  # type: ignore[arg-type]

    monkeypatch.setattr(JovialSpawner, "_make_backend", make_backend)
    monkeypatch.setattr(JovialSpawner, "_backends", {})
    monkeypatch.setattr(JovialSpawner, "_sweeps", {})
    (tmp_path / "home").mkdir()
    yield Hub(docker, tmp_path)
    for task in JovialSpawner._sweeps.values():
        task.cancel()
    for backend in JovialSpawner._backends.values():
        await backend.close()  # type: ignore[attr-defined]


@pytest.mark.skipif(os.geteuid() != 0, reason="homes are chowned to their users (CI runs as root)")
async def test_after_a_restart_mid_spawn_her_orphan_is_removed_what_runs_stays_and_her_next_spawn_works(hub: Hub, caplog) -> None:
    caplog.set_level("INFO", logger=LOG.name)
    docker = hub.docker
    # What the old hub left: alice's spawn, interrupted by the restart (service and config made, no
    # object id saved), bob's running server (its id saved), and a site's own service.
    passwd = docker.add_config("jovial-passwd-" + "a" * 20, labels_of(ALICE, "jupyter-alice"))
    docker.add_service("jupyter-alice", labels_of(ALICE, "jupyter-alice"), (passwd,))
    bob_id = docker.add_service("jupyter-bob", labels_of(BOB, "jupyter-bob"), running_at="10.0.1.6")
    docker.add_service("jupyter-site-tool", {"com.example.site": "tool"})

    # The new hub's init_spawners: every recorded server's spawner, pending "check" before the first await.
    alice = hub.spawner("alice", recorded=True)
    bob = hub.spawner("bob", {"object_id": bob_id, "object_name": "jupyter-bob"}, recorded=True)
    alice._check_pending = bob._check_pending = True
    await check(alice)  # nothing of hers runs, as far as the hub knows: stopped, but her service stays
    assert alice.server is None and "jupyter-alice" in docker.service_names()

    backend = JovialSpawner._backends["swarm"]
    await backend.watcher.first()  # type: ignore[attr-defined]
    carol = hub.spawner("carol")
    await spawn(carol)  # a spawn of the new hub, after its first list, while bob's check still runs
    assert not JovialSpawner._sweeps["swarm"].done()  # waiting for the hub's checks
    await check(bob)  # his server runs: kept
    assert bob.server is not None and bob.object_id == bob_id
    await asyncio.wait_for(JovialSpawner._sweeps["swarm"], 5)

    assert docker.service_names() == ["jupyter-bob", "jupyter-carol", "jupyter-site-tool"]
    assert passwd not in docker.configs_by_id
    removals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Removing ")]
    assert removals == ["Removing jupyter-alice (user 'alice', server ''): no spawner of this hub owns it (left by a "
                        "spawn that a hub restart interrupted, or by a server the hub no longer knows)"]

    await spawn(alice)  # her next spawn works, under her name
    service = next(s for s in docker.services_by_id.values() if s["Spec"]["Name"] == "jupyter-alice")
    assert service["Spec"]["Labels"]["jovial.user"] == "alice" and alice.object_id == service["ID"]
    await alice.stop()
    await carol.stop()
