"""JovialLDAPAuthenticator against a real slapd: logins work, a wrong password is refused, and a
directory that is down or frozen (SIGSTOP: it accepts connections but never answers) fails the
login with a 503 that says so, without blocking the hub's event loop; once slapd answers again,
logins work again with no restart."""

import asyncio
import os
import shutil
import signal
import time
from collections.abc import Iterator

import pytest
from tornado import web

from jovial.authenticator import DIRECTORY_DOWN, JovialLDAPAuthenticator
from tests.slapd import SUFFIX, Slapd, start_slapd

pytestmark = pytest.mark.slapd


@pytest.fixture
def slapd() -> Iterator[Slapd]:
    server = start_slapd()
    yield server
    if server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)  # in case a test left it frozen
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


def authenticator(server: Slapd) -> JovialLDAPAuthenticator:
    return JovialLDAPAuthenticator(
        server_address="127.0.0.1",
        server_port=server.port,
        tls_strategy="insecure",
        bind_dn_template=[f"uid={{username}},ou=people,{SUFFIX}"],
        ldap_timeout=1.0,
        allow_all=True,
    )


async def test_a_demo_user_logs_in_and_a_wrong_password_is_refused(slapd: Slapd) -> None:
    auth = authenticator(slapd)
    assert (await auth.authenticate(None, {"username": "alice", "password": slapd.demo_password}))["name"] == "alice"
    assert await auth.authenticate(None, {"username": "alice", "password": "wrong"}) is None


async def test_a_directory_that_is_down_gives_a_503_that_says_so(slapd: Slapd) -> None:
    auth = authenticator(slapd)
    slapd.stop()
    with pytest.raises(web.HTTPError) as refused:
        await auth.authenticate(None, {"username": "alice", "password": slapd.demo_password})
    assert refused.value.status_code == 503 and refused.value.log_message == DIRECTORY_DOWN


async def test_a_frozen_directory_times_out_without_blocking_the_hub_and_recovers(slapd: Slapd) -> None:
    auth = authenticator(slapd)
    os.kill(slapd.process.pid, signal.SIGSTOP)
    ticks = 0

    async def event_loop_ticks() -> None:  # counts while the login waits: the loop must stay free
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    ticker = asyncio.create_task(event_loop_ticks())
    started = time.monotonic()
    try:
        with pytest.raises(web.HTTPError) as refused:
            await auth.authenticate(None, {"username": "alice", "password": slapd.demo_password})
    finally:
        ticker.cancel()
    waited = time.monotonic() - started
    assert refused.value.status_code == 503
    assert ticks >= waited / 0.05 / 2, f"the event loop ran {ticks} times in {waited:.1f} s: the login blocked it"

    os.kill(slapd.process.pid, signal.SIGCONT)
    assert (await auth.authenticate(None, {"username": "alice", "password": slapd.demo_password}))["name"] == "alice"
