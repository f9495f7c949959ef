"""Admins from the directory (JovialLDAPAuthenticator.admin_groups), on a real JupyterHub
(tests/ldap/local_hub.py: no Docker) against a real slapd: members of an admin group are the hub's
admins from their login on, and may open the admin panel and stop another user's server; others get
403 there and from the REST API; a change of membership in the directory grants or takes the role
at the user's next re-check, without a new login."""

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import ldap3
import pytest
import requests

from tests.hub import HubUser
from tests.ldap.local_hub import local_hub
from tests.slapd import SUFFIX, Slapd, start_slapd

pytestmark = pytest.mark.slapd
GAIA = f"cn=gaia,ou=groups,{SUFFIX}"  # the demo directory's gaia group lists alice only
REFRESH_AGE = 1.0  # auth_refresh_age: each user's requests re-check the directory at most every second


@pytest.fixture
def slapd() -> Iterator[Slapd]:
    server = start_slapd()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


def until(check: Callable[[], bool], what: str, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {limit} s"
        time.sleep(0.2)


def test_a_member_of_an_admin_group_stops_another_users_server_and_a_non_member_is_refused(slapd: Slapd, tmp_path: Path) -> None:
    with local_hub(slapd, tmp_path, allow_all=True, admin_groups=[GAIA]) as (url, log):
        alice, bob = HubUser("alice", slapd.demo_password, url), HubUser("bob", slapd.demo_password, url)
        assert alice.model()["admin"] is True
        assert bob.model()["admin"] is False

        assert bob.session.get(f"{url}/hub/admin", timeout=10).status_code == 403
        assert bob.api.get(f"{url}/hub/api/users", timeout=10).status_code == 403
        assert bob.api.delete(f"{url}/hub/api/users/alice/server", timeout=10).status_code in (403, 404)
        assert alice.session.get(f"{url}/hub/admin", timeout=10).status_code == 200
        assert {u["name"] for u in alice.api.get(f"{url}/hub/api/users", timeout=10).json()} >= {"alice", "bob"}

        assert bob.api.post(bob.server_api_url, json={"user_options": {}}, timeout=30).status_code in (201, 202)
        until(lambda: bool(bob.model()["servers"].get("", {}).get("ready")), "bob's server getting ready")
        assert alice.api.delete(f"{url}/hub/api/users/bob/server", timeout=30).status_code in (202, 204)
        until(lambda: "" not in bob.model()["servers"], "bob's server stopping")


def test_a_change_in_the_admin_group_grants_or_takes_the_role_at_the_next_recheck(slapd: Slapd, tmp_path: Path) -> None:
    with local_hub(slapd, tmp_path, allow_all=True, admin_groups=[GAIA], auth_refresh_age=REFRESH_AGE) as (url, log):
        alice, bob = HubUser("alice", slapd.demo_password, url), HubUser("bob", slapd.demo_password, url)
        directory = ldap3.Connection(slapd.url, user=slapd.root_dn, password=slapd.root_password, auto_bind=True)
        assert directory.modify(GAIA, {"memberUid": [(ldap3.MODIFY_DELETE, ["alice"]), (ldap3.MODIFY_ADD, ["bob"])]}), directory.result
        time.sleep(REFRESH_AGE + 0.5)

        assert alice.model()["admin"] is False  # the request itself re-checks her
        assert alice.api.get(f"{url}/hub/api/users", timeout=10).status_code == 403
        assert bob.model()["admin"] is True
        assert bob.api.get(f"{url}/hub/api/users", timeout=10).status_code == 200
        said = log.read_text()
        assert "alice is no longer an admin: a member of none of admin_groups" in said
        assert "bob is now an admin: a member of admin_groups" in said


def test_without_admin_groups_the_directory_leaves_admin_users_alone(slapd: Slapd, tmp_path: Path) -> None:
    with local_hub(slapd, tmp_path, allow_all=True, admin_users={"bob"}, auth_refresh_age=REFRESH_AGE) as (url, _):
        bob = HubUser("bob", slapd.demo_password, url)
        time.sleep(REFRESH_AGE + 0.5)
        assert bob.model()["admin"] is True
        assert requests.get(f"{url}/hub/api/users", headers={"Authorization": f"token {bob.token}"}, timeout=10).status_code == 200


def test_with_admin_groups_admin_users_stay_admins(slapd: Slapd, tmp_path: Path) -> None:
    with local_hub(slapd, tmp_path, allow_all=True, admin_groups=[GAIA], admin_users={"carol"}, auth_refresh_age=REFRESH_AGE) as (url, _):
        carol = HubUser("carol", slapd.demo_password, url)  # not in gaia
        assert carol.model()["admin"] is True
        time.sleep(REFRESH_AGE + 0.5)
        assert carol.model()["admin"] is True  # the re-check keeps her
