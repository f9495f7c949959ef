"""An account deleted from the site's LDAP can no longer start a server on the deployed hub.

The dev stack lets every account in (JOVIAL_ALLOW_ALL_USERS=true), so what is re-checked before
every spawn is that the account still exists. A throw-away demo user logs in and gets an API token;
then its entry is deleted from the dev LDAP (the stack service jovial_ldap, changed from inside its
container as the directory's administrator). The token it holds can no longer start a server (403),
its next login is refused, the hub's log says why, and another user still starts one. The entry is
put back exactly as it was afterwards, even when the test fails.
"""

import shlex
import time
from collections.abc import Iterator

import docker
import pytest
import requests

from tests.hub import SMALL, HubUser, demo_password, hub_log, post_login, remove_servers_of

pytestmark = pytest.mark.swarm
REMOVED_USER = "student59"  # used by no other test
OTHER_USER = "student58"  # used by no other test
SUFFIX = "dc=jovial,dc=test"  # stacks/dev.yml
REMOVED_DN = f"uid={REMOVED_USER},ou=people,{SUFFIX}"


def ldap_container() -> docker.models.containers.Container:
    [container] = docker.from_env().containers.list(filters={"label": "com.docker.swarm.service.name=jovial_ldap"})
    return container


def as_directory_admin(tool: str, *arguments: str, ldif: str = "") -> str:
    """Run an OpenLDAP tool (ldapsearch, ldapadd, ldapdelete) inside the dev LDAP's container, bound
    as the directory's administrator, with `ldif` on its standard input; return what it printed.

    The password is the container's own secret, handed to the tool in a file of mode 0600 without the
    secret's trailing newline (which -y would send as part of it), removed afterwards."""
    script = (
        'umask 077; pw=$(mktemp); printf %s "$(cat /run/secrets/ldap_admin_password)" > "$pw"; '
        f'printf %s "$LDIF" | {tool} -x -H ldap://127.0.0.1 -D "cn=admin,{SUFFIX}" -y "$pw" '
        f'{shlex.join(arguments)}; status=$?; rm -f "$pw"; exit $status'
    )
    result = ldap_container().exec_run(["sh", "-c", script], environment={"LDIF": ldif})
    output = result.output.decode()
    assert result.exit_code == 0, f"{tool} {shlex.join(arguments)}: exit {result.exit_code}: {output}"
    return output


def read_entry(dn: str) -> str:
    """The entry's user attributes (the password hash too) as LDIF, one line per value."""
    return as_directory_admin("ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-s", "base", "-b", dn, "*")


@pytest.fixture
def users() -> Iterator[tuple[HubUser, HubUser]]:
    """REMOVED_USER and OTHER_USER logged in, with API tokens and no server; afterwards no server of
    theirs is left and the hub remembers the options it remembered before."""
    remove_servers_of(REMOVED_USER, OTHER_USER)
    removed, other = HubUser(REMOVED_USER), HubUser(OTHER_USER)
    try:
        yield removed, other
    finally:
        try:
            other.stop()
            removed.stop()  # nothing to stop unless the refusal failed; puts back its remembered options
        finally:
            remove_servers_of(REMOVED_USER, OTHER_USER)


@pytest.fixture
def deleted_account(users: tuple[HubUser, HubUser]) -> Iterator[None]:
    """REMOVED_USER's entry deleted from the directory after the logins (so its token was issued while
    the account existed), then added back exactly as it was, before the users' servers are stopped."""
    saved = read_entry(REMOVED_DN)
    assert saved.startswith(f"dn: {REMOVED_DN}\n"), saved
    as_directory_admin("ldapdelete", REMOVED_DN)
    try:
        yield
    finally:
        as_directory_admin("ldapadd", ldif=saved)
        assert read_entry(REMOVED_DN) == saved, "the entry was not put back as it was"


def test_a_deleted_account_can_no_longer_start_a_server_with_its_token(users: tuple[HubUser, HubUser], deleted_account: None) -> None:
    removed, other = users
    since = int(time.time()) - 1

    refused = removed.api.post(removed.server_api_url, json={"user_options": SMALL}, timeout=60)
    assert refused.status_code == 403, (refused.status_code, refused.text)
    assert not removed.model()["servers"], "a server was started for the deleted account"
    assert post_login(requests.Session(), REMOVED_USER, demo_password()).status_code != 302, "the deleted account logged in"
    logged = hub_log(docker.from_env(), since)
    assert f"{REMOVED_USER} may no longer use this hub: no account {REMOVED_DN} in the directory" in logged, logged[-3000:]

    other.start(SMALL)
    assert other.wait_ready()["ready"]
