"""The deployed hub's database: PostgreSQL, held by one hub, and `swarm/migrate-db` moving a hub
database of before (a SQLite volume) into it, on the real stack.

- The hub holds the hub lock (spawner/hub_lock.py) on the stack's PostgreSQL, and a second hub
  started next to it (in the hub's own container, as Swarm would start one on another manager)
  waits for it, saying who holds it.
- `swarm/migrate-db VOLUME` with JOVIAL_DB_URL naming a database of the test's own: every user and
  token arrives, the old file is kept renamed, a second run finds nothing to do, a target with
  users is refused with the reason, and each time the hub runs again afterwards and nothing of the
  job is left. The stack's own database is not touched; the test's database, its pg_hba line and
  its volumes are removed afterwards.
"""

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests
from jupyterhub import orm

from jovial.hub_lock import HUB_LOCK_KEY
from tests.hub import HUB_URL

pytestmark = pytest.mark.swarm
REPO = Path(__file__).resolve().parents[2]
STACK = "jovial"
DATA = "/var/lib/jovial/postgres"  # in the postgres container


def container_of(client: docker.DockerClient, service: str) -> docker.models.containers.Container:
    running = client.containers.list(filters={"label": f"com.docker.swarm.service.name={service}"})
    assert len(running) == 1, f"{service}: {len(running)} containers"
    return running[0]


def superuser(client: docker.DockerClient, sql: str, database: str = "jupyterhub") -> str:
    status, output = container_of(client, f"{STACK}_postgres").exec_run(
        ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
         "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql])
    assert status == 0, output.decode()
    return output.decode().strip()


def wait_for_the_hub(limit: float = 180) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            if requests.get(f"{HUB_URL}/hub/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"the hub did not answer within {limit} s"
        time.sleep(0.5)


@pytest.fixture
def client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


def test_the_hub_holds_the_lock_and_a_second_hub_waits(client: docker.DockerClient) -> None:
    holders = superuser(client, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                f"AND objid = {HUB_LOCK_KEY & 0xFFFFFFFF}")
    assert holders == "1"
    hub = container_of(client, f"{STACK}_hub")
    second = (
        "import logging, sys; logging.basicConfig(stream=sys.stdout, format='%(message)s');"
        "from jovial.hub_lock import HubLock; from sqlalchemy.engine import make_url;"
        "url = make_url('postgresql://jupyterhub@postgres:5432/jupyterhub').set(password=open('/run/secrets/db_password').read().strip());"
        "HubLock(url.render_as_string(hide_password=False), logging.getLogger()).hold(); print('HELD')"
    )
    status, output = hub.exec_run(["timeout", "10", "python3", "-c", second])
    said = output.decode()
    assert status == 124, said  # still waiting when `timeout` ended it
    assert "another hub holds the hub lock of postgres:5432/jupyterhub (its connection from " in said, said
    assert "HELD" not in said
    assert requests.get(f"{HUB_URL}/hub/health", timeout=10).status_code == 200


@pytest.fixture
def target(client: docker.DockerClient) -> Iterator[str]:
    """A database of the test's own in the stack's PostgreSQL, which the hub's role may use."""
    name = f"test_migrate_{secrets.token_hex(4)}"
    line = f"host {name} jupyterhub all scram-sha-256"
    postgres = container_of(client, f"{STACK}_postgres")
    superuser(client, f"CREATE DATABASE {name} OWNER jupyterhub")
    assert postgres.exec_run(["sh", "-c", f"echo '{line}' >> {DATA}/pg_hba.conf"]).exit_code == 0
    superuser(client, "SELECT pg_reload_conf()")
    try:
        yield name
    finally:
        postgres = container_of(client, f"{STACK}_postgres")
        postgres.exec_run(["sed", "-i", f"/^{line}$/d", f"{DATA}/pg_hba.conf"])
        superuser(client, "SELECT pg_reload_conf()")
        superuser(client, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def old_volumes(client: docker.DockerClient) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        client.volumes.get(name).remove(force=True)


def old_database(client: docker.DockerClient, volumes: list[str], users: list[str]) -> tuple[str, dict[str, str]]:
    """A volume holding a SQLite hub database (JupyterHub's ORM) with these users, each with a token."""
    volume = client.volumes.create(f"jovial-test-old-hub-{secrets.token_hex(4)}", labels={"jovial.test": "migrate-db"})
    volumes.append(volume.name)
    path = Path(volume.attrs["Mountpoint"]) / "jupyterhub.sqlite"
    db = orm.new_session_factory(f"sqlite:///{path}")()
    db.add(orm.OAuthClient(identifier="jupyterhub"))
    tokens = {}
    for name in users:
        user = orm.User(name=name)
        db.add(user)
        db.commit()
        tokens[name] = user.new_api_token(note="from the old hub")
    db.close()
    return volume.name, tokens


def migrate(volume: str, database: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REPO / "swarm" / "migrate-db", volume], capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                               "JOVIAL_DB_URL": f"postgresql://jupyterhub@postgres:5432/{database}"})


def after_a_run(client: docker.DockerClient) -> None:
    """The hub runs again and the migration job is gone."""
    wait_for_the_hub()
    assert not client.services.list(filters={"name": f"{STACK}-migrate-db"})
    assert not client.containers.list(all=True, filters={"label": f"com.docker.swarm.service.name={STACK}-migrate-db"})


def test_swarm_migrate_db_moves_every_user_and_token_once_and_refuses_a_target_with_users(
    client: docker.DockerClient, target: str, old_volumes: list[str]
) -> None:
    volume, tokens = old_database(client, old_volumes, ["mig-ada", "mig-bea"])
    run = migrate(volume, target)
    after_a_run(client)
    assert run.returncode == 0, run.stderr
    assert "migrate_db: copied " in run.stderr and ", 2 users," in run.stderr, run.stderr
    assert superuser(client, "SELECT string_agg(name, ',' ORDER BY name) FROM users", target) == "mig-ada,mig-bea"
    for name, token in tokens.items():  # a token is stored as its hash: found by its prefix and checked as the hub does
        assert superuser(client, f"SELECT u.name FROM api_tokens t JOIN users u ON u.id = t.user_id "
                                 f"WHERE t.prefix = '{token[:orm.APIToken.prefix_length]}'", target) == name
    files = sorted(p.name for p in Path(client.volumes.get(volume).attrs["Mountpoint"]).iterdir())
    assert files == ["jupyterhub.sqlite.migrated"], files

    again = migrate(volume, target)
    after_a_run(client)
    assert again.returncode != 0 and "was migrated already" in again.stderr, again.stderr

    other, _ = old_database(client, old_volumes, ["mig-cal"])
    refused = migrate(other, target)
    after_a_run(client)
    assert refused.returncode != 0
    assert "the target database already has 2 users: not merging" in refused.stderr, refused.stderr
    assert "the old database is untouched" in refused.stderr
    assert (Path(client.volumes.get(other).attrs["Mountpoint"]) / "jupyterhub.sqlite").is_file()
    assert superuser(client, "SELECT count(*) FROM users", target) == "2"


def test_swarm_migrate_db_says_when_there_is_nothing_to_move(client: docker.DockerClient) -> None:
    run = migrate("jovial-test-no-such-volume", "unused")
    assert run.returncode != 0 and "there is no volume jovial-test-no-such-volume: nothing to migrate" in run.stderr
    assert requests.get(f"{HUB_URL}/hub/health", timeout=10).status_code == 200  # it did not stop the hub
