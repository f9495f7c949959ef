"""JovialLDAPAuthenticator against a real slapd: logins work, a wrong password is refused, and a
directory that is down or frozen (SIGSTOP: it accepts connections but never answers) fails the
login with a 503 that says so, without blocking the hub's event loop; once slapd answers again,
logins work again with no restart. Over ldaps:// and StartTLS, a login reaches only a directory
whose certificate comes from a trusted CA and names the server: any other is refused with a 503
that says so, and the reason in the log."""

import asyncio
import logging
import os
import shutil
import signal
import ssl
import time
from collections.abc import Iterator

import pytest
from tornado import web
from traitlets import TraitError

from jovial.authenticator import DIRECTORY_DOWN, DIRECTORY_NOT_TRUSTED, JovialLDAPAuthenticator
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


def authenticator(server: Slapd, **changes: object) -> JovialLDAPAuthenticator:
    settings = dict(
        server_address="127.0.0.1",
        server_port=server.port,
        tls_strategy="insecure",  # the plain-LDAP tests' slapd offers no TLS
        bind_dn_template=[f"uid={{username}},ou=people,{SUFFIX}"],
        ldap_timeout=1.0,
        allow_all=True,
    )
    return JovialLDAPAuthenticator(**{**settings, **changes})


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



@pytest.fixture(scope="module")
def tls_slapds() -> Iterator[dict[str, Slapd]]:
    """Two slapds offering ldaps:// and StartTLS, each with a throw-away CA of its own: one with a
    certificate for 127.0.0.1 (where the tests reach it), one for ldap.example.org (the wrong name)."""
    servers = {"right name": start_slapd(with_tls=True), "wrong name": start_slapd(with_tls=True, certificate_name="ldap.example.org")}
    yield servers
    for server in servers.values():
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


def tls_authenticator(server: Slapd, tls_strategy: str, ca_file: str) -> JovialLDAPAuthenticator:
    port = server.ldaps_port if tls_strategy == "on_connect" else server.port
    return authenticator(server, server_port=port, tls_strategy=tls_strategy, ldap_ca_file=ca_file)


@pytest.mark.parametrize("tls_strategy", ["on_connect", "before_bind"])
async def test_a_login_over_tls_to_a_directory_with_a_trusted_certificate_works(tls_slapds: dict[str, Slapd], tls_strategy: str) -> None:
    server = tls_slapds["right name"]
    auth = tls_authenticator(server, tls_strategy, str(server.ca_file))
    assert (await auth.authenticate(None, {"username": "alice", "password": server.demo_password}))["name"] == "alice"
    assert await auth.authenticate(None, {"username": "alice", "password": "wrong"}) is None


@pytest.mark.parametrize("tls_strategy", ["on_connect", "before_bind"])
@pytest.mark.parametrize(
    ("server_name", "trusted_ca_of", "reason"),
    [
        pytest.param("right name", None, "certificate verify failed", id="from-a-CA-the-system-does-not-trust"),
        pytest.param("right name", "wrong name", "certificate verify failed", id="from-another-CA-than-ldap_ca_file"),
        pytest.param("wrong name", "wrong name", "doesn't match any name in ['127.0.0.1']", id="for-another-name"),
    ],
)
async def test_a_directory_whose_certificate_fails_verification_is_refused_with_the_reason(
    tls_slapds: dict[str, Slapd], tls_strategy: str, server_name: str, trusted_ca_of: str | None, reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = tls_slapds[server_name]
    auth = tls_authenticator(server, tls_strategy, str(tls_slapds[trusted_ca_of].ca_file) if trusted_ca_of else "")
    with caplog.at_level(logging.ERROR), pytest.raises(web.HTTPError) as refused:
        await auth.authenticate(None, {"username": "alice", "password": server.demo_password})
    assert refused.value.status_code == 503 and refused.value.log_message == DIRECTORY_NOT_TRUSTED
    logged = [r.getMessage() for r in caplog.records]
    assert any("certificate failed verification" in line and reason in line for line in logged), logged


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        pytest.param({"tls_kwargs": {"validate": ssl.CERT_NONE}}, "may not set 'validate'", id="CERT_NONE"),
        pytest.param({"tls_kwargs": {"validate": ssl.CERT_OPTIONAL}}, "may not set 'validate'", id="CERT_OPTIONAL"),
        pytest.param({"tls_kwargs": {"valid_names": "*"}}, "nor 'valid_names' to '\\*'", id="any-name"),
        pytest.param({"ldap_ca_file": "/nonexistent/ca.pem"}, "ldap_ca_file '/nonexistent/ca.pem' is not a file", id="no-CA-file"),
    ],
)
def test_settings_that_would_not_verify_the_directory_are_refused(setting: dict[str, object], complaint: str) -> None:
    with pytest.raises(TraitError, match=complaint):
        JovialLDAPAuthenticator(server_address="127.0.0.1", bind_dn_template=["uid={username}"], **setting)
