"""JovialLDAPAuthenticator against a real slapd: logins work, a wrong password is refused, and a
directory that is down or frozen (SIGSTOP: it accepts connections but never answers) fails the
login with a 503 that says so, without blocking the hub's event loop; once slapd answers again,
logins work again with no restart. Over ldaps:// and StartTLS, a login reaches only a directory
whose certificate comes from a trusted CA and names the server: any other is refused with a 503
that says so, and the reason in the log. Before every spawn the directory is asked again, with the
hub's account: a user removed from the allowed groups (member, uniqueMember or memberUid), deleted,
or no longer matching search_filter is refused; a directory that is down, frozen or refuses the
hub's account refuses spawns with a 503 and keeps sessions going."""

import asyncio
import logging
import os
import shutil
import signal
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import ldap3
import pytest
from tornado import web
from traitlets import TraitError

from jovial.authenticator import DIRECTORY_DOWN, DIRECTORY_DOWN_AT_SPAWN, DIRECTORY_NOT_TRUSTED, JovialLDAPAuthenticator
from jovial.errors import DirectoryUnavailable
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


@asynccontextmanager
async def the_event_loop_stays_free(what: str) -> AsyncIterator[None]:
    """Count the event loop's 50 ms ticks while `what` waits on the directory (also when it raises);
    afterwards, fail unless the loop ran at least half of them: the wait did not block the hub."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    try:
        yield
    finally:
        ticker.cancel()
        waited = time.monotonic() - started
        assert ticks >= int(waited / 0.05 / 2), f"the event loop ran {ticks} times in {waited:.1f} s: {what} blocked it"


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
    with pytest.raises(web.HTTPError) as refused:
        async with the_event_loop_stays_free("the login"):
            await auth.authenticate(None, {"username": "alice", "password": slapd.demo_password})
    assert refused.value.status_code == 503

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


# --- before every spawn: is the user still allowed? --------------------------------------------------
# JupyterHub calls refresh_user before each spawn (and every auth_refresh_age seconds). It re-reads,
# with the hub's own account, whether the account still exists and is still in an allowed group.

ALICE_DN = f"uid=alice,ou=people,{SUFFIX}"
BOB_DN = f"uid=bob,ou=people,{SUFFIX}"


def hub_user(name: str) -> SimpleNamespace:
    """What refresh_user and pre_spawn_start read of JupyterHub's User: its name."""
    return SimpleNamespace(name=name)


def rechecking_authenticator(server: Slapd, tmp_path: Path, **changes: object) -> JovialLDAPAuthenticator:
    """An authenticator that re-checks users with the directory's hub account (cn=hub,ou=services)."""
    password_file = tmp_path / "ldap_bind_password"
    password_file.write_text(server.hub_password + "\n")  # as Docker secrets often are: with a newline
    return authenticator(server, ldap_bind_dn=server.hub_dn, ldap_bind_password_file=str(password_file), **changes)


def directory_admin(server: Slapd) -> ldap3.Connection:
    """A connection bound as the directory's administrator, to change users and groups during a test."""
    return ldap3.Connection(server.url, user=server.root_dn, password=server.root_password, auto_bind=True)


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# (group DN, object class to create it with (None: in the demo directory), attribute, alice's value)
GROUP_STYLES = {
    "posixGroup-memberUid": (f"cn=astro,ou=groups,{SUFFIX}", None, "memberUid", "alice"),
    "groupOfNames-member": (f"cn=observers,ou=groups,{SUFFIX}", "groupOfNames", "member", ALICE_DN),
    "groupOfUniqueNames-uniqueMember": (f"cn=reviewers,ou=groups,{SUFFIX}", "groupOfUniqueNames", "uniqueMember", ALICE_DN),
}


@pytest.mark.parametrize("style", GROUP_STYLES)
async def test_a_member_removed_from_the_allowed_group_is_refused_before_the_next_spawn(
    slapd: Slapd, tmp_path: Path, style: str, caplog: pytest.LogCaptureFixture
) -> None:
    group, object_class, attribute, alice_value = GROUP_STYLES[style]
    admin = directory_admin(slapd)
    if object_class:
        bob_value = "bob" if attribute == "memberUid" else BOB_DN
        assert admin.add(group, object_class, {attribute: [alice_value, bob_value]}), admin.result
    auth = rechecking_authenticator(slapd, tmp_path, allow_all=False, allowed_groups=[group])
    assert await auth.refresh_user(hub_user("alice")) is True

    assert admin.modify(group, {attribute: [(ldap3.MODIFY_DELETE, [alice_value])]}), admin.result
    with caplog.at_level(logging.WARNING):
        assert await auth.refresh_user(hub_user("alice")) is False  # JupyterHub: 403, log in again
    assert any("alice may no longer use this hub" in line and group in line for line in refusals(caplog)), refusals(caplog)
    assert await auth.refresh_user(hub_user("bob")) is True  # still a member
    assert await auth.get_authenticated_user(None, {"username": "alice", "password": slapd.demo_password}) is None


async def test_a_deleted_account_is_refused_even_when_every_account_may_log_in(
    slapd: Slapd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    auth = rechecking_authenticator(slapd, tmp_path, allow_all=True)
    assert await auth.refresh_user(hub_user("carol")) is True

    admin = directory_admin(slapd)
    assert admin.delete(f"uid=carol,ou=people,{SUFFIX}"), admin.result
    with caplog.at_level(logging.WARNING):
        assert await auth.refresh_user(hub_user("carol")) is False
    assert any("carol may no longer use this hub" in line and "no account" in line for line in refusals(caplog)), refusals(caplog)
    assert await auth.refresh_user(hub_user("alice")) is True
    assert await auth.get_authenticated_user(None, {"username": "carol", "password": slapd.demo_password}) is None


async def test_an_account_that_no_longer_matches_search_filter_is_refused(slapd: Slapd, tmp_path: Path) -> None:
    auth = rechecking_authenticator(
        slapd, tmp_path, user_search_base=f"ou=people,{SUFFIX}", user_attribute="uid",
        search_filter="(&({userattr}={username})(loginShell=/bin/bash))",  # a site's way to lock accounts
    )
    assert await auth.refresh_user(hub_user("alice")) is True
    admin = directory_admin(slapd)
    assert admin.modify(ALICE_DN, {"loginShell": [(ldap3.MODIFY_REPLACE, ["/usr/sbin/nologin"])]}), admin.result
    assert await auth.refresh_user(hub_user("alice")) is False


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
async def test_a_directory_that_is_down_refuses_spawns_with_a_503_but_keeps_sessions(
    slapd: Slapd, tmp_path: Path, outage: str, caplog: pytest.LogCaptureFixture
) -> None:
    auth = rechecking_authenticator(slapd, tmp_path)
    alice = hub_user("alice")
    assert await auth.refresh_user(alice) is True
    auth.pre_spawn_start(alice, None)  # confirmed: the spawn goes on

    if outage == "stopped":
        slapd.stop()
    else:
        os.kill(slapd.process.pid, signal.SIGSTOP)  # accepts connections, never answers
    with caplog.at_level(logging.WARNING):
        async with the_event_loop_stays_free("the re-check"):
            assert await auth.refresh_user(alice) is True  # her browser session and tokens keep working
    with pytest.raises(DirectoryUnavailable) as refused:
        auth.pre_spawn_start(alice, None)
    assert refused.value.status_code == 503 and refused.value.jupyterhub_message == DIRECTORY_DOWN_AT_SPAWN
    assert any("Could not re-check alice" in line for line in refusals(caplog)), refusals(caplog)

    if outage == "stopped":
        slapd.restart()
    else:
        os.kill(slapd.process.pid, signal.SIGCONT)
    assert await auth.refresh_user(alice) is True
    auth.pre_spawn_start(alice, None)  # the directory answers again: spawns go on, no restart needed


async def test_a_hub_account_the_directory_refuses_stops_spawns_and_says_which_account(
    slapd: Slapd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    auth = rechecking_authenticator(slapd, tmp_path)
    Path(auth.ldap_bind_password_file).write_text("not the hub's password\n")
    with caplog.at_level(logging.WARNING):
        assert await auth.refresh_user(hub_user("alice")) is True
    with pytest.raises(DirectoryUnavailable):
        auth.pre_spawn_start(hub_user("alice"), None)
    assert any(slapd.hub_dn in line and "ldap_bind_password_file" in line for line in refusals(caplog)), refusals(caplog)


def test_the_recheck_is_on_by_default_and_cannot_be_switched_off_by_accident(tmp_path: Path) -> None:
    auth = JovialLDAPAuthenticator(server_address="127.0.0.1", bind_dn_template=["uid={username}"])
    assert auth.refresh_pre_spawn and auth.auth_refresh_strict and auth.auth_refresh_age == 300
    with pytest.raises(TraitError, match="auth_refresh_age must be more than 0"):
        JovialLDAPAuthenticator(server_address="127.0.0.1", bind_dn_template=["uid={username}"], auth_refresh_age=0)
    with pytest.raises(TraitError, match="does not support lookup_dn"):
        JovialLDAPAuthenticator(server_address="127.0.0.1", bind_dn_template=["uid={username}"], lookup_dn=True)
    with pytest.raises(TraitError, match="ldap_bind_password_file '/nonexistent/pw' is not a file"):
        JovialLDAPAuthenticator(server_address="127.0.0.1", bind_dn_template=["uid={username}"], ldap_bind_password_file="/nonexistent/pw")
