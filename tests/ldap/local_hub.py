"""A real JupyterHub process for the tests, logging in against a test slapd, with no Docker at all.

The hub is JupyterHub itself (its handlers, its refresh rules, its database) with Jovial's
authenticator; only the parts around it are stand-ins: a proxy that keeps routes in memory (the
tests talk to the hub's own port) and a spawner whose "server" is a tiny HTTP listener in the hub
process that answers 200 to anything. Started as a subprocess, stopped by its PID.
"""

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from jupyterhub.proxy import Proxy
from jupyterhub.spawner import Spawner

from tests.slapd import REPO, SUFFIX, Slapd, free_port


class RoutesInMemory(Proxy):
    """A proxy that only remembers its routes: nothing is proxied."""

    should_start = False

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.routes: dict[str, dict] = {}

    async def add_route(self, routespec: str, target: str, data: dict) -> None:
        self.routes[routespec] = {"routespec": routespec, "target": target, "data": data}

    async def delete_route(self, routespec: str) -> None:
        self.routes.pop(routespec, None)

    async def get_all_routes(self) -> dict[str, dict]:
        return dict(self.routes)


async def _answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await writer.drain()
    writer.close()


class ListenerSpawner(Spawner):
    """A "server" that is an HTTP listener in the hub process: it starts at once and answers 200."""

    _listener: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self._listener = await asyncio.start_server(_answer_ok, "127.0.0.1", 0)
        return "127.0.0.1", self._listener.sockets[0].getsockname()[1]

    async def poll(self) -> int | None:
        return None if self._listener is not None else 0

    async def stop(self, now: bool = False) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None


@contextmanager
def local_hub(server: Slapd, workdir: Path, **authenticator_settings: object) -> Iterator[tuple[str, Path]]:
    """A JupyterHub on a free loopback port whose JovialLDAPAuthenticator logs in against `server`
    and re-checks users with its hub account; `authenticator_settings` add to or replace its
    settings. Yields the hub's URL and its log file."""
    password_file = workdir / "ldap_bind_password"
    password_file.write_text(server.hub_password + "\n")
    settings = {
        "server_address": "127.0.0.1",
        "server_port": server.port,
        "tls_strategy": "insecure",  # the test slapd offers no TLS
        "bind_dn_template": [f"uid={{username}},ou=people,{SUFFIX}"],
        "ldap_timeout": 1.0,
        "ldap_bind_dn": server.hub_dn,
        "ldap_bind_password_file": str(password_file),
        **authenticator_settings,
    }
    port = free_port()
    config = workdir / "jupyterhub_config.py"
    config.write_text(
        textwrap.dedent(
            f"""
            c.JupyterHub.bind_url = "http://127.0.0.1:{free_port()}"  # the (absent) proxy's
            c.JupyterHub.hub_bind_url = "http://127.0.0.1:{port}"
            c.JupyterHub.db_url = "sqlite:///{workdir}/jupyterhub.sqlite"
            c.JupyterHub.cookie_secret = bytes.fromhex("{os.urandom(32).hex()}")
            c.JupyterHub.proxy_class = "tests.ldap.local_hub.RoutesInMemory"
            c.JupyterHub.spawner_class = "tests.ldap.local_hub.ListenerSpawner"
            c.JupyterHub.authenticator_class = "jovial.authenticator.JovialLDAPAuthenticator"
            c.JupyterHub.cleanup_servers = True
            """
        )
        + "".join(f"c.JovialLDAPAuthenticator.{name} = {value!r}\n" for name, value in settings.items())
    )
    log = workdir / "hub.log"
    with log.open("w") as log_file:
        hub = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=workdir, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"{url}/hub/health"):
            assert hub.poll() is None, f"the hub exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the hub did not answer within 30 s: {log.read_text()[-3000:]}"
            time.sleep(0.1)
        yield url, log
    finally:
        hub.terminate()
        try:
            hub.wait(timeout=15)
        except subprocess.TimeoutExpired:
            hub.kill()
            hub.wait()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
