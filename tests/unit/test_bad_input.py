"""Bad input stops JovialSpawner.start() with its own message before anything is made: no home
directory, no call to the cluster. The error is a SpawnException with an HTTP status, which the hub
shows as it is (it does not crash on it), and the progress stream ends.

The cluster is a trap that records every call: the control case (good input) proves that start()
does reach it, so the others prove that they did not. Homes are made in a real directory (root)."""

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyterhub.spawner import SpawnException
from traitlets.config import Config

from jovial.errors import IdentityError, InvalidUsername, JovialError, OptionsError, StorageError
from jovial.spawner import JovialSpawner

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root (CI runs as root)")


class ClusterReached(Exception):
    """Raised by the trap: start() got as far as the cluster."""


class TrapBackend:
    """A backend that records each call and refuses it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, method: str):
        async def call(*args: object, **kwargs: object) -> None:
            self.calls.append(method)
            raise ClusterReached(method)

        return call


IDENTITIES = {
    "alice": {"uid": 10001, "gid": 10001},
    "Alice.Smith@example.org": {"uid": 10002, "gid": 10002},
    "rooty": {"uid": 0, "gid": 10003},
    "wheely": {"uid": 10004, "gid": 0},
    "mallory": {"uid": 10005, "gid": 10005},
}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path


@pytest.fixture
def trap(monkeypatch: pytest.MonkeyPatch) -> TrapBackend:
    backend = TrapBackend()
    monkeypatch.setitem(JovialSpawner._backends, "swarm", backend)
    return backend


async def no_auth_state() -> None:
    return None


def make_spawner(site: Path, username: str, user_options: dict | None = None) -> JovialSpawner:
    config = Config()
    config.JovialSpawner.update(
        identities=IDENTITIES,
        ldap_url="",
        shared_fs_root=str(site),
        home_path_template=f"{site}/home/{{username}}",
        image="jovial/singleuser:dev",
        allowed_images={"minimal": "jovial/singleuser:dev"},
        profiles=[{"name": "small", "cpu_limit": 1}],
        max_cpu_limit=4.0,
    )
    user = SimpleNamespace(name=username, escaped_name=username, url=f"/user/{username}/", server=None, get_auth_state=no_auth_state)
    hub = SimpleNamespace(public_host="", api_url="http://hub:8081/hub/api", base_url="/hub/")
    spawner = JovialSpawner(config=config, user=user, hub=hub, _deprecated_db_session=None, api_token="test-token")
    spawner.user_options = user_options or {}
    return spawner


async def progress_messages(spawner: JovialSpawner) -> list[str]:
    return [event["message"] async for event in spawner.progress()]


async def test_good_input_reaches_the_cluster(site: Path, trap: TrapBackend) -> None:
    spawner = make_spawner(site, "Alice.Smith@example.org", {"profile": "small", "image": "minimal"})
    with pytest.raises(ClusterReached):
        await spawner.start()
    assert trap.calls and (site / "home" / "Alice.Smith@example.org").is_dir()


@pytest.mark.parametrize(
    ("username", "options", "error", "message", "status"),
    [
        ("../etc", {}, InvalidUsername, "The username '../etc' contains '/'", 400),
        ("..", {}, InvalidUsername, "The username '..' is not a valid directory name", 400),
        ("al ice", {}, InvalidUsername, "contains whitespace or control characters", 400),
        ("al\0ice", {}, InvalidUsername, "contains a NUL character", 400),
        ("a" * 200, {}, InvalidUsername, "200 characters long; at most 64", 400),
        ("rooty", {}, IdentityError, "has uidNumber 0; servers never run as root", 400),
        ("wheely", {}, IdentityError, "has gidNumber 0; servers never run as root", 400),
        ("nobody", {}, IdentityError, "No identity source knows 'nobody'", 400),
        ("alice", {"profile": "huge"}, OptionsError, "Unknown profile 'huge'; choose one of \\['small'\\]", 400),
        ("alice", {"image": "evil/miner"}, OptionsError, "The image 'evil/miner' is not offered here", 400),
        ("alice", {"cpu_limit": 1e6}, OptionsError, "cpu_limit 1000000.0 is over this site's maximum of 4.0 cores", 400),
        ("alice", {"cpu_limit": 1e-10}, OptionsError, "cpu_limit must be at least 0.001 core, not 1e-10", 400),
        ("alice", {"mem_limit": "1G"}, OptionsError, "does not let users set mem_limit", 400),
        ("alice", {"privileged": True}, OptionsError, "Unknown server option\\(s\\) \\['privileged'\\]", 400),
    ],
)
async def test_bad_input_is_refused_before_anything_is_made(
    site: Path, trap: TrapBackend, username: str, options: dict, error: type[JovialError], message: str, status: int
) -> None:
    spawner = make_spawner(site, username, options)
    with pytest.raises(error, match=message) as refused:
        await spawner.start()
    assert isinstance(refused.value, SpawnException) and refused.value.status_code == status
    assert trap.calls == [] and list((site / "home").iterdir()) == []
    await progress_messages(spawner)  # ends: the hub's progress bar is not left waiting


async def test_a_home_that_is_a_symlink_out_of_the_filesystem_is_refused(
    site: Path, trap: TrapBackend, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (site / "home" / "mallory").symlink_to(outside)
    spawner = make_spawner(site, "mallory")
    with pytest.raises(StorageError, match=f"The home {site}/home/mallory exists but is a symlink or a file"):
        await spawner.start()
    assert trap.calls == [] and list(outside.iterdir()) == [] and outside.stat().st_uid == 0
    assert await progress_messages(spawner) == ["Found your account: mallory, uid 10005, gid 10005"]
