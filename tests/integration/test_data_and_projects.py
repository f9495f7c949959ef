"""Data next to compute, in the deployed dev stack (swarm/up makes both directories):

- the read-only data collection `demo` (<root>/data/demo, a FITS image) appears at /data/demo in
  every user's server, and nobody can write there;
- the project directory of the posix group astro (<root>/projects/astro, root:astro, mode 2770)
  is mounted at /projects/astro for its members alice and bob, who share files there, and not
  for carol, who is not a member; the directory's mode keeps her out on the filesystem itself.

Every server is a real spawn through the hub (the minimal default image); every check runs in a
terminal of the user's own server. Files the tests write are removed at the end.
"""

import os
import stat
import subprocess
import uuid
from collections.abc import Iterator

import docker
import pytest

from tests.hub import FS_ROOT, SMALL, HubUser, remove_servers_of

pytestmark = pytest.mark.swarm
USERS = ("alice", "bob", "carol")
ASTRO_GID = 20001
DEMO_FITS = FS_ROOT / "data" / "demo" / "m31-demo.fits"
PROJECT = FS_ROOT / "projects" / "astro"
TAG = f"jovial-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def users() -> Iterator[dict[str, HubUser]]:
    remove_servers_of(*USERS)
    started: dict[str, HubUser] = {}
    try:
        for name in USERS:
            started[name] = HubUser(name)
            started[name].start(SMALL)
        for user in started.values():
            user.wait_ready()
        yield started
    finally:
        for user in started.values():
            user.stop()
        remove_servers_of(*USERS)
        for path in PROJECT.glob(f"{TAG}*"):
            path.unlink()
        for path in DEMO_FITS.parent.glob(f"{TAG}*"):  # only there if the read-only mount failed
            path.unlink()


def test_the_site_made_the_directories_as_documented() -> None:
    info = os.stat(PROJECT)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, ASTRO_GID, 0o2770)
    assert DEMO_FITS.read_bytes()[:9] == b"SIMPLE  ="


def test_every_server_sees_the_demo_collection(users: dict[str, HubUser]) -> None:
    for name, user in users.items():
        status, output = user.run_in_terminal("head -c 9 /data/demo/m31-demo.fits; echo; stat -c %s /data/demo/m31-demo.fits")
        assert (status, output) == (0, f"SIMPLE  =\n{DEMO_FITS.stat().st_size}"), name


def test_nobody_can_write_to_the_collection(users: dict[str, HubUser]) -> None:
    before = DEMO_FITS.read_bytes()
    for name, user in users.items():
        # Mounted read-only (whatever the files' modes say), and every kind of write fails.
        assert user.run_in_terminal("awk '$2 == \"/data/demo\" { print $4 }' /proc/mounts | cut -d, -f1") == (0, "ro"), name
        status, output = user.run_in_terminal(f"touch /data/demo/{TAG}-{name}")
        assert status != 0 and "Read-only file system" in output, f"{name}: {output}"
        for command in ("echo x >> /data/demo/m31-demo.fits", "rm -f /data/demo/m31-demo.fits", "chmod 666 /data/demo/m31-demo.fits"):
            status, output = user.run_in_terminal(command)
            assert status != 0, f"{name}: {command}: {output}"
    assert DEMO_FITS.read_bytes() == before
    assert not list(DEMO_FITS.parent.glob(f"{TAG}*"))


def test_group_members_share_the_project_directory(users: dict[str, HubUser]) -> None:
    alice, bob = users["alice"], users["bob"]
    assert alice.run_in_terminal(f"echo from alice > /projects/astro/{TAG}-alice.txt") == (0, "")
    assert bob.run_in_terminal(f"cat /projects/astro/{TAG}-alice.txt") == (0, "from alice")
    assert bob.run_in_terminal(f"echo from bob > /projects/astro/{TAG}-bob.txt") == (0, "")
    assert alice.run_in_terminal(f"cat /projects/astro/{TAG}-bob.txt") == (0, "from bob")
    for name, uid in (("alice", 10001), ("bob", 10002)):
        info = (PROJECT / f"{TAG}-{name}.txt").stat()
        assert (info.st_uid, info.st_gid) == (uid, ASTRO_GID), name  # the setgid directory's group


def test_an_outsider_has_no_way_into_the_project_directory(users: dict[str, HubUser]) -> None:
    carol = users["carol"]
    status, output = carol.run_in_terminal("ls /projects/astro")
    assert status != 0 and "No such file or directory" in output, output
    mounts = docker.from_env().services.get("jupyter-carol").attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Mounts"]
    assert str(PROJECT) not in {m["Source"] for m in mounts}
    # On the filesystem itself (as on Lustre, whatever is mounted where): her uid and groups are
    # refused by the directory's mode, a member's are not.
    as_carol = ["setpriv", "--reuid=10003", "--regid=10003", "--clear-groups"]
    denied = subprocess.run([*as_carol, "touch", str(PROJECT / f"{TAG}-carol.txt")], capture_output=True, text=True)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    as_bob = ["setpriv", "--reuid=10002", "--regid=10002", f"--groups={ASTRO_GID}"]
    assert subprocess.run([*as_bob, "ls", str(PROJECT)], capture_output=True).returncode == 0
