"""Parsing LDAP attributes into a PosixIdentity: lists or scalars, and never root."""

import pytest

from jovial.errors import IdentityError
from jovial.identity import PosixGroup, check_least_id, identity_from_auth_state, identity_from_ldap, identity_from_mapping
from jovial.nss import group_file, passwd_file

ALICE = {"uid": ["alice"], "cn": ["Alice Astronomer"], "uidNumber": [10001], "gidNumber": ["10001"]}
GROUPS = [
    {"cn": ["astro"], "gidNumber": [20001]},
    {"cn": "alice", "gidNumber": 10001},
    {"cn": ["gaia"], "gidNumber": [20002]},
]


def test_identity_from_ldap_lists_and_scalars() -> None:
    identity = identity_from_ldap("alice", ALICE, GROUPS)
    assert (identity.uid, identity.gid, identity.display_name) == (10001, 10001, "Alice Astronomer")
    assert identity.groups == (PosixGroup("alice", 10001), PosixGroup("astro", 20001), PosixGroup("gaia", 20002))
    assert identity.supplementary_gids == (20001, 20002)
    assert identity.primary_group_name == "alice"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"uidNumber": []}, "has no uidNumber"),
        ({"uidNumber": None}, "has no uidNumber"),
        ({"gidNumber": [""]}, "has no gidNumber"),
        ({"uidNumber": [0]}, "uidNumber 0"),
        ({"gidNumber": ["0"]}, "gidNumber 0"),
        ({"uidNumber": [-5]}, "uidNumber -5"),
        ({"uidNumber": ["ten"]}, "not a number"),
    ],
)
def test_missing_or_root_ids_are_refused(change: dict, complaint: str) -> None:
    with pytest.raises(IdentityError, match=complaint):
        identity_from_ldap("alice", {**ALICE, **change}, [])


def test_a_group_with_gid_0_is_refused_by_name() -> None:
    with pytest.raises(
        IdentityError, match="The directory entry of the group 'wheel' of 'alice' has gidNumber 0; servers never run as root"
    ):
        identity_from_ldap("alice", ALICE, [*GROUPS, {"cn": "wheel", "gidNumber": 0}])


def test_ids_below_the_sites_least_id_are_refused_naming_each() -> None:
    identity = identity_from_ldap("alice", {**ALICE, "gidNumber": 100}, [*GROUPS, {"cn": "docker", "gidNumber": 999}])
    with pytest.raises(
        IdentityError,
        match="The account 'alice' has gid 100, group 'docker' gid 999, below this site's least id 1000",
    ):
        check_least_id(identity, 1000)
    check_least_id(identity_from_ldap("alice", ALICE, GROUPS), 1000)  # her own ids: served
    check_least_id(identity, 100)  # a site that says so


def test_a_group_without_a_gid_is_refused_by_name() -> None:
    with pytest.raises(IdentityError, match="the group 'staff' of 'alice' has no gidNumber"):
        identity_from_ldap("alice", ALICE, [{"cn": ["staff"], "gidNumber": []}])


def test_primary_group_name_falls_back_to_the_username() -> None:
    assert identity_from_ldap("alice", ALICE, []).primary_group_name == "alice"


def test_passwd_and_group_files_name_the_user_and_groups() -> None:
    identity = identity_from_ldap("alice", {**ALICE, "cn": "Alice: the\nAstronomer"}, GROUPS)
    passwd = passwd_file(identity, "/home/alice").splitlines()
    assert passwd[-1] == "alice:x:10001:10001:Alice  the Astronomer:/home/alice:/bin/bash"
    assert passwd[0].startswith("root:x:0:0:")
    assert group_file(identity).splitlines()[-3:] == ["alice:x:10001:alice", "astro:x:20001:alice", "gaia:x:20002:alice"]


def test_identity_from_a_static_table() -> None:
    identity = identity_from_mapping("carol", {"uid": 10003, "gid": 10003, "name": "Carol", "groups": {"astro": 20001}})
    assert (identity.uid, identity.supplementary_gids, identity.display_name) == (10003, (20001,), "Carol")
    with pytest.raises(IdentityError, match="uidNumber 0"):
        identity_from_mapping("root", {"uid": 0, "gid": 0})


def test_identity_from_auth_state_of_the_ldap_authenticator() -> None:
    state = {"user_attributes": {"uidNumber": ["10002"], "gidNumber": ["10002"], "cn": ["Bob Observer"]}}
    identity = identity_from_auth_state("bob", state)
    assert identity is not None and (identity.uid, identity.gid, identity.groups) == (10002, 10002, ())
    assert identity_from_auth_state("bob", None) is None
    assert identity_from_auth_state("bob", {"user_attributes": {"cn": ["Bob"]}}) is None
