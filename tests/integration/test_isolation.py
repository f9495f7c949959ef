"""Isolation, proved from inside a running user server: every command runs in a terminal of
alice's own server (a child of the server process, as her JupyterLab terminal would be).

She runs as her LDAP uid/gid with her groups, cannot gain privileges (no-new-privileges, no
capabilities, setuid binaries do not help), cannot reach Docker (no socket, the API proxy is on a
network her server is not on), sees no other home and no hub secret or database, and a runaway
process meets her memory limit without taking her server down. (Her server refusing requests
without her token: test_spawn.py.)"""

import os
import stat
from collections.abc import Iterator

import pytest

from tests.hub import FS_ROOT, SMALL, HubUser, remove_servers_of

pytestmark = pytest.mark.swarm


@pytest.fixture(scope="module")
def alice() -> Iterator[HubUser]:
    remove_servers_of("alice")
    user = HubUser("alice")
    user.start(SMALL)
    user.wait_ready()
    yield user
    user.stop()
    remove_servers_of("alice")


def run(user: HubUser, command: str) -> tuple[int, str]:
    return user.run_in_terminal(command)


def test_she_is_her_ldap_identity_not_root(alice: HubUser) -> None:
    assert run(alice, "id -u; id -g; id -G | tr ' ' '\\n' | sort -n | tr '\\n' ' '") == (0, "10001\n10001\n10001 20001 20002")
    assert run(alice, "id -un; echo $HOME; pwd") == (0, "alice\n/home/alice\n/home/alice")


def test_privileges_cannot_be_gained(alice: HubUser) -> None:
    assert run(alice, "grep -E '^(NoNewPrivs|CapEff|CapPrm|CapBnd)' /proc/self/status | tr -s '\\t' ' '") == (
        0,
        "CapPrm: 0000000000000000\nCapEff: 0000000000000000\nCapBnd: 0000000000000000\nNoNewPrivs: 1",
    )
    status, output = run(alice, "su -c id root < /dev/null")
    assert status != 0, output
    # A setuid-root binary runs, but as her: the setuid bit is ignored under no-new-privileges.
    assert run(alice, "stat -c %A /usr/bin/mount") == (0, "-rwsr-xr-x")
    status, output = run(alice, "mount -t tmpfs none /tmp")
    assert status != 0, output


def test_docker_is_out_of_reach(alice: HubUser) -> None:
    status, output = run(alice, "ls /var/run/docker.sock /run/docker.sock")
    assert status != 0, output
    for host in ("docker-proxy", "jovial_docker-proxy"):
        status, output = run(alice, f"timeout 5 bash -c 'exec 3<>/dev/tcp/{host}/2375' && echo connected")
        assert status != 0 and "connected" not in output, f"{host}: {output}"


def test_other_homes_secrets_and_the_hub_database_are_out_of_reach(alice: HubUser) -> None:
    assert run(alice, "ls -A /home") == (0, "alice")
    status, output = run(alice, "ls -A /run/secrets")
    assert status != 0, output
    # The hub's database: not on her network (the stack's `database` network is the hub's and
    # PostgreSQL's alone), and its files on the shared filesystem are not mounted in her server.
    for host in ("postgres", "jovial_postgres"):
        status, output = run(alice, f"timeout 5 bash -c 'exec 3<>/dev/tcp/{host}/5432' && echo connected")
        assert status != 0 and "connected" not in output, f"{host}: {output}"
    status, output = run(alice, f"ls -A {FS_ROOT}/.jovial /lustre/.jovial")
    assert status != 0 and "postgres" not in output, output
    # On the shared filesystem itself, every home is its owner's alone.
    for home in (FS_ROOT / "home").iterdir():
        assert stat.S_IMODE(os.stat(home).st_mode) & 0o077 == 0, f"{home} is open to others"



def test_the_memory_limit_kills_a_runaway_process_not_her_server(alice: HubUser) -> None:
    # Her server runs under the small profile's 2 GB limit: a 3 GB allocation is killed by the kernel.
    status, output = run(alice, "python3 -c 'b = bytearray(3 * 2**30); print(\"allocated\")'")
    assert status == 137 and "allocated" not in output, (status, output)
    assert alice.server_answers(), "her server died with the runaway process"
