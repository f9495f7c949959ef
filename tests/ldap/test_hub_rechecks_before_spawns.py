"""A real JupyterHub (tests/ldap/local_hub.py: no Docker) re-checks the directory before every spawn.

A user removed from the allowed group, or whose account is deleted, can no longer start a server:
not with the API token they already hold, nor with their browser cookie, nor by an admin on their
behalf (JupyterHub answers 403), and their next login is refused; another user still starts one.
While the directory is down a start is refused with a 503 that says so, but the user's session and
token keep working for the rest.

Each case runs twice: with the user's auth fresh, and stale (older than auth_refresh_age), when
JupyterHub's own periodic refresh at the start of the request is the only check the spawn gets.
"""

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest
import requests

from jovial.authenticator import DIRECTORY_DOWN_AT_SPAWN
from tests.hub import HubUser, post_login
from tests.ldap.local_hub import local_hub
from tests.slapd import SUFFIX, Slapd, start_slapd

pytestmark = pytest.mark.slapd
ASTRO = f"cn=astro,ou=groups,{SUFFIX}"  # alice and bob
STALE_AFTER = 1.0  # auth_refresh_age of the "stale" runs, in seconds
AUTH_AGES = [pytest.param(300, id="fresh-auth"), pytest.param(STALE_AFTER, id="stale-auth")]


@pytest.fixture
def slapd() -> Iterator[Slapd]:
    server = start_slapd()
    yield server
    if server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


def directory_admin(server: Slapd) -> ldap3.Connection:
    return ldap3.Connection(server.url, user=server.root_dn, password=server.root_password, auto_bind=True)


def start(user: HubUser) -> requests.Response:
    """Ask for the user's server with their API token."""
    return user.api.post(user.server_api_url, json={"user_options": {}}, timeout=30)


def let_auth_go_stale(auth_refresh_age: float) -> None:
    if auth_refresh_age == STALE_AFTER:
        time.sleep(STALE_AFTER + 0.5)


@pytest.mark.parametrize("auth_refresh_age", AUTH_AGES)
def test_a_member_removed_from_the_allowed_group_can_no_longer_start_a_server(
    slapd: Slapd, tmp_path: Path, auth_refresh_age: float
) -> None:
    hub = local_hub(slapd, tmp_path, allow_all=False, allowed_groups=[ASTRO], admin_users={"bob"}, auth_refresh_age=auth_refresh_age)
    with hub as (url, log):
        alice, bob = HubUser("alice", slapd.demo_password, url), HubUser("bob", slapd.demo_password, url)
        admin = directory_admin(slapd)
        assert admin.modify(ASTRO, {"memberUid": [(ldap3.MODIFY_DELETE, ["alice"])]}), admin.result
        let_auth_go_stale(auth_refresh_age)

        by_token = start(alice)
        assert by_token.status_code == 403, (by_token.status_code, by_token.text)
        by_an_admin = bob.api.post(alice.server_api_url, json={"user_options": {}}, timeout=30)
        assert by_an_admin.status_code == 403, (by_an_admin.status_code, by_an_admin.text)
        by_cookie = alice.session.get(f"{url}/hub/spawn", allow_redirects=False, timeout=30)
        if auth_refresh_age == STALE_AFTER:  # refused at the start of the request: logged out, sent to log in
            assert by_cookie.status_code == 302 and "/hub/login" in by_cookie.headers["Location"], by_cookie.status_code
        else:
            assert by_cookie.status_code == 403, (by_cookie.status_code, by_cookie.text[:300])
        assert post_login(requests.Session(), "alice", slapd.demo_password, url).status_code != 302
        assert start(bob).status_code in (201, 202)
        assert f"alice may no longer use this hub: a member of none of allowed_groups ['{ASTRO}']" in log.read_text()


@pytest.mark.parametrize("auth_refresh_age", AUTH_AGES)
def test_a_deleted_account_can_no_longer_start_a_server_when_every_account_may_log_in(
    slapd: Slapd, tmp_path: Path, auth_refresh_age: float
) -> None:
    with local_hub(slapd, tmp_path, allow_all=True, auth_refresh_age=auth_refresh_age) as (url, log):
        carol, bob = HubUser("carol", slapd.demo_password, url), HubUser("bob", slapd.demo_password, url)
        admin = directory_admin(slapd)
        assert admin.delete(f"uid=carol,ou=people,{SUFFIX}"), admin.result
        let_auth_go_stale(auth_refresh_age)

        refused = start(carol)
        assert refused.status_code == 403, (refused.status_code, refused.text)
        assert start(bob).status_code in (201, 202)
        assert "carol may no longer use this hub: no account" in log.read_text()


@pytest.mark.parametrize("auth_refresh_age", AUTH_AGES)
def test_a_directory_that_is_down_refuses_starts_with_a_503_and_keeps_sessions(
    slapd: Slapd, tmp_path: Path, auth_refresh_age: float
) -> None:
    with local_hub(slapd, tmp_path, allow_all=True, auth_refresh_age=auth_refresh_age) as (url, log):
        alice = HubUser("alice", slapd.demo_password, url)
        slapd.stop()
        let_auth_go_stale(auth_refresh_age)

        refused = start(alice)
        assert refused.status_code == 503 and refused.json()["message"] == DIRECTORY_DOWN_AT_SPAWN, (refused.status_code, refused.text)
        assert alice.model()["name"] == "alice"  # the token still works for all but starting servers
        assert "Could not re-check alice" in log.read_text()

        slapd.restart()
        assert start(alice).status_code in (201, 202)  # no restart of the hub needed
