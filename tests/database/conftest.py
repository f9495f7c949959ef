"""A real PostgreSQL of its own for each test module: a container of the stack's jovial/postgres
image (the hub's database in the dev stack and the test cluster), published on a free loopback
port, its data in a tmpfs, removed afterwards even when a test failed."""

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import psycopg
import pytest

IMAGE = f"jovial/postgres:{os.environ.get('JOVIAL_TAG', 'dev')}"


@dataclass
class Postgres:
    container: docker.models.containers.Container
    password: str
    port: int

    def url(self, database: str = "jupyterhub") -> str:
        """The SQLAlchemy URL of one of its databases, as the hub's role, password included."""
        return f"postgresql://jupyterhub:{self.password}@127.0.0.1:{self.port}/{database}"

    def superuser(self, sql: str) -> str:
        """Run `sql` as the cluster's superuser (over the container's local socket); its output."""
        status, output = self.container.exec_run(
            ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
             "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", "jupyterhub", "-c", sql])
        assert status == 0, output.decode()
        return output.decode().strip()


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    password = secrets.token_hex(16)
    secret = tmp_path_factory.mktemp("postgres") / "db_password"
    secret.write_text(password)
    secret.chmod(0o644)
    client = docker.from_env()
    container = client.containers.run(
        IMAGE, detach=True, labels={"jovial.test": "database"}, ports={"5432/tcp": ("127.0.0.1", None)},
        volumes={str(secret): {"bind": "/run/secrets/db_password", "mode": "ro"}},
        tmpfs={"/var/lib/jovial/postgres": ""},
    )
    try:
        container.reload()
        server = Postgres(container, password, int(container.ports["5432/tcp"][0]["HostPort"]))
        wait_until_it_answers(server)
        yield server
    finally:
        container.remove(force=True)
        client.close()


def wait_until_it_answers(server: Postgres, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            psycopg.connect(server.url(), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            server.container.reload()
            assert server.container.status == "running", server.container.logs().decode()[-2000:]
            assert time.monotonic() < deadline, f"PostgreSQL did not answer within {limit} s"
            time.sleep(0.3)


@pytest.fixture
def fresh_database(postgres: Postgres) -> Iterator[str]:
    """The URL of a new, empty database owned by the hub's role; dropped afterwards."""
    name = f"test_{secrets.token_hex(4)}"
    postgres.superuser(f"CREATE DATABASE {name} OWNER jupyterhub")
    # The image admits the hub's role to the database `jupyterhub` only: this one too.
    status, output = postgres.container.exec_run(
        ["sh", "-c", f"echo 'host {name} jupyterhub all scram-sha-256' >> /var/lib/jovial/postgres/pg_hba.conf"])
    assert status == 0, output.decode()
    postgres.superuser("SELECT pg_reload_conf()")
    yield postgres.url(name)
    postgres.superuser(f"DROP DATABASE {name} WITH (FORCE)")
