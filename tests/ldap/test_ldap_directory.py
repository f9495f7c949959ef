"""LdapDirectory against a real slapd: identities, groups, bad entries, outages and the cache."""

import shutil
import subprocess
import time
from collections.abc import Iterator

import ldap3
import pytest

from jovial.errors import DirectoryMisconfigured, DirectoryUnavailable, IdentityError
from jovial.identity import PosixGroup
from jovial.ldap_directory import LdapDirectory, LdapSettings
from tests.slapd import SUFFIX, Slapd, start_slapd

pytestmark = pytest.mark.slapd


@pytest.fixture(scope="module")
def slapd() -> Iterator[Slapd]:
    server = start_slapd()
    _add_odd_entries(server)
    _add_entries_breaking_the_schema(server)
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


def _add_odd_entries(server: Slapd) -> None:
    """Entries a real directory may hold: root ids, duplicates, a person without POSIX attributes."""
    conn = ldap3.Connection(server.url, server.root_dn, server.root_password, auto_bind=True)
    people = f"ou=people,{SUFFIX}"
    posix = ["inetOrgPerson", "posixAccount"]
    conn.add(f"ou=guests,{SUFFIX}", "organizationalUnit")
    for dn, attrs in [
        (f"uid=rooty,{people}", {"uidNumber": 0, "gidNumber": 10009}),
        (f"uid=wheely,{people}", {"uidNumber": 10010, "gidNumber": 0}),
        (f"uid=twin,{people}", {"uidNumber": 10011, "gidNumber": 10011}),
        (f"uid=twin,ou=guests,{SUFFIX}", {"uidNumber": 10012, "gidNumber": 10012}),
        (f"uid=alicia,{people}", {"uidNumber": 10013, "gidNumber": 10013}),
        (f"uid=alicia2,{people}", {"uidNumber": 10013, "gidNumber": 10013}),
        (f"uid=multi,{people}", {"uid": ["multi", "mm"], "uidNumber": 10014, "gidNumber": 10014}),
        (f"uid=rooted,{people}", {"uidNumber": 10015, "gidNumber": 10015}),
    ]:
        uid = dn.split(",")[0].split("=")[1]
        assert conn.add(dn, posix, {"cn": uid, "sn": uid, "homeDirectory": f"/home/{uid}", **attrs}), conn.result
    assert conn.add(f"uid=nonposix,{people}", ["inetOrgPerson"], {"cn": "n", "sn": "n"}), conn.result
    wheel = {"cn": "wheel", "gidNumber": 0, "memberUid": "rooted"}
    assert conn.add(f"cn=wheel,ou=groups,{SUFFIX}", "posixGroup", wheel), conn.result
    conn.unbind()


def _add_entries_breaking_the_schema(server: Slapd) -> None:
    """posixAccounts without a uidNumber, gidNumber or homeDirectory: slapd refuses them online (the
    schema requires all three), but a directory loaded without schema checks (slapadd -s) holds them."""
    people = f"ou=people,{SUFFIX}"
    entries = []
    for uid, attrs in [
        ("no-uidnumber", {"gidNumber": 10016, "homeDirectory": "/home/x"}),
        ("no-gidnumber", {"uidNumber": 10017, "homeDirectory": "/home/x"}),
        ("homeless", {"uidNumber": 10018, "gidNumber": 10018}),
    ]:
        lines = [f"dn: uid={uid},{people}", "objectClass: inetOrgPerson", "objectClass: posixAccount",
                 f"uid: {uid}", f"cn: {uid}", f"sn: {uid}", *(f"{k}: {v}" for k, v in attrs.items())]
        entries.append("\n".join(lines))
    ldif = server.workdir / "schema-breaking.ldif"
    ldif.write_text("\n\n".join(entries) + "\n")
    server.stop()
    subprocess.run(["/usr/sbin/slapadd", "-s", "-f", str(server.workdir / "slapd.conf"), "-l", str(ldif)], check=True, capture_output=True)
    server.restart()


def directory(server: Slapd, **changes: object) -> LdapDirectory:
    settings = dict(
        url=server.url,
        user_base_dn=SUFFIX,
        group_base_dn=f"ou=groups,{SUFFIX}",
        bind_dn=server.hub_dn,
        bind_password=server.hub_password,
        timeout=2.0,
        tls="insecure",  # the test slapd speaks plain LDAP on loopback
    )
    return LdapDirectory(LdapSettings(**{**settings, **changes}))


async def test_alice_has_her_uid_gid_and_every_group(slapd: Slapd) -> None:
    alice = await directory(slapd).lookup("alice")
    assert (alice.uid, alice.gid, alice.display_name) == (10001, 10001, "Alice Astronomer")
    assert alice.groups == (PosixGroup("alice", 10001), PosixGroup("astro", 20001), PosixGroup("gaia", 20002))


async def test_bob_is_in_astro_only(slapd: Slapd) -> None:
    bob = await directory(slapd).lookup("bob")
    assert [g.name for g in bob.groups] == ["bob", "astro"]


@pytest.mark.parametrize(
    ("username", "complaint"),
    [
        ("nobody-here", "no POSIX account for 'nobody-here'"),
        ("nonposix", "no POSIX account"),
        ("a*", "no POSIX account for 'a\\*'"),
        ("rooty", "uidNumber 0"),
        ("wheely", "gidNumber 0"),
        ("twin", "2 accounts named 'twin'"),
        ("alicia", r"uid 10013 of 'alicia' is also the uid of \['alicia2'\]"),
        ("Alice", r"found the account \['alice'\] for 'Alice' \(LDAP ignores case\), "
                  r"but a server only runs as an account named exactly 'Alice'"),
        ("rooted", "the group 'wheel' of 'rooted' has gidNumber 0; servers never run as root"),
        ("no-uidnumber", "The directory entry of 'no-uidnumber' has no uidNumber"),
        ("no-gidnumber", "The directory entry of 'no-gidnumber' has no gidNumber"),
    ],
)
async def test_bad_entries_are_refused_with_the_reason(slapd: Slapd, username: str, complaint: str) -> None:
    with pytest.raises(IdentityError, match=complaint):
        await directory(slapd).lookup(username)


async def test_an_account_with_two_uids_is_one_account_not_a_shared_uid(slapd: Slapd) -> None:
    assert (await directory(slapd).lookup("multi")).uid == 10014
    assert (await directory(slapd).lookup("mm")).uid == 10014


async def test_an_account_without_a_home_directory_is_served(slapd: Slapd) -> None:
    """Jovial never reads homeDirectory: the home is the site's home_path_template."""
    assert (await directory(slapd).lookup("homeless")).uid == 10018


async def test_wrong_bind_password_is_the_operators_to_fix(slapd: Slapd) -> None:
    with pytest.raises(DirectoryMisconfigured, match="refused the hub's account cn=hub,ou=services.*must fix ldap_bind_dn"):
        await directory(slapd, bind_password="wrong").lookup("alice")


async def test_a_wrong_base_dn_is_an_error_not_an_empty_result(slapd: Slapd) -> None:
    with pytest.raises(DirectoryMisconfigured, match="below 'ou=nogroups,dc=jovial,dc=test' failed \\(noSuchObject\\)"):
        await directory(slapd, group_base_dn="ou=nogroups,dc=jovial,dc=test").lookup("alice")


@pytest.mark.parametrize(
    ("url", "tls", "complaint"),
    [
        ("ldap://x", "on_connect", "needs an ldaps:// URL"),
        ("ldaps://x", "insecure", "needs an ldap:// URL"),
        ("ldap://x", "maybe", "must be one of"),
    ],
)
def test_tls_settings_that_do_not_fit_the_url_are_refused(url: str, tls: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        LdapSettings(url=url, user_base_dn=SUFFIX, group_base_dn=SUFFIX, tls=tls)


def test_the_bind_password_is_not_in_reprs() -> None:
    assert "s3cret" not in repr(LdapSettings(url="ldaps://x", user_base_dn="", group_base_dn="", bind_password="s3cret"))


async def test_directory_down_fails_fast_and_clearly() -> None:
    server = start_slapd()
    url = server.url
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)
    started = time.monotonic()
    with pytest.raises(IdentityError, match="cannot be reached right now"):
        await LdapDirectory(LdapSettings(url=url, user_base_dn=SUFFIX, group_base_dn=SUFFIX, timeout=2.0, tls="insecure")).lookup("alice")
    assert time.monotonic() - started < 10  # a sanity bound on a refused connection, not a benchmark


async def test_identities_are_cached_until_the_ttl_and_failures_are_not() -> None:
    server = start_slapd()
    try:
        reader = directory(server, cache_ttl=1.0)
        with pytest.raises(IdentityError):
            await reader.lookup("nobody-here")
        alice = await reader.lookup("alice")
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
    assert await reader.lookup("alice") == alice  # served from the cache with the server gone
    time.sleep(1.1)
    with pytest.raises(IdentityError, match="cannot be reached"):
        await reader.lookup("alice")  # the same reader, its entry expired: asks the (gone) server


async def test_one_connection_is_reused_and_reopened_after_an_ldap_restart() -> None:
    server = start_slapd()
    try:
        reader = directory(server, cache_ttl=0.0)
        await reader.lookup("alice")
        first = reader._connection
        await reader.lookup("bob")
        assert reader._connection is first  # reused, not one connection per lookup
        server.restart()
        assert (await reader.lookup("carol")).uid == 10003  # the dropped connection was replaced
        assert reader._connection is not first
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


async def test_starttls_verifies_the_servers_certificate() -> None:
    server = start_slapd(with_tls=True)
    try:
        trusted = directory(server, tls="before_bind", ca_file=str(server.ca_file))
        assert (await trusted.lookup("alice")).uid == 10001
        with pytest.raises(DirectoryUnavailable, match="cannot be reached right now.*certificate verify failed"):
            await directory(server, tls="before_bind").lookup("alice")  # signed by a CA the system does not trust
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


async def test_starttls_refuses_a_certificate_for_another_host() -> None:
    server = start_slapd(with_tls=True, certificate_name="ldap.example.org")
    try:
        with pytest.raises(DirectoryUnavailable, match=r"cannot be reached right now.*doesn't match any name in \['127.0.0.1'\]"):
            await directory(server, tls="before_bind", ca_file=str(server.ca_file)).lookup("alice")  # a trusted CA, the wrong name
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
