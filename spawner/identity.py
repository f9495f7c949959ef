"""POSIX identity of a user (uid, gid, groups, home) and its parsing from LDAP attributes. Pure."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import IdentityError


@dataclass(frozen=True)
class PosixGroup:
    """A posixGroup the user belongs to."""

    name: str
    gid: int


@dataclass(frozen=True)
class PosixIdentity:
    """Who a user's server runs as. Never root: uid and gid are always positive."""

    username: str
    uid: int
    gid: int
    display_name: str
    groups: tuple[PosixGroup, ...]

    @property
    def supplementary_gids(self) -> tuple[int, ...]:
        """Every group id but the primary one, sorted and without repeats."""
        return tuple(sorted({g.gid for g in self.groups} - {self.gid}))

    @property
    def primary_group_name(self) -> str:
        """The primary group's name, or the username when the directory has no such group."""
        return next((g.name for g in self.groups if g.gid == self.gid), self.username)


def _single(attrs: Mapping[str, Any], key: str) -> Any:
    """One value of an LDAP attribute (ldap3 may give a list), or None when absent or empty."""
    value = attrs.get(key)
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return None if value in ("", b"") else value


def _positive_id(entry: str, attrs: Mapping[str, Any], key: str) -> int:
    """`key` of the directory entry described by `entry` (e.g. "'alice'"), a positive integer."""
    value = _single(attrs, key)
    if value is None:
        raise IdentityError(f"The directory entry of {entry} has no {key}; ask your administrator to set one.")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise IdentityError(f"The directory entry of {entry} has a {key} that is not a number: {value!r}.") from None
    if number <= 0:
        raise IdentityError(
            f"The directory entry of {entry} has {key} {number}; servers never run as root or with negative ids."
        )
    return number


def check_least_id(identity: PosixIdentity, least: int) -> None:
    """Refuse an identity with a uid, gid or group id below the site's least id (min_id)."""
    ids = [("uid", identity.uid), ("gid", identity.gid)] + [(f"group {g.name!r} gid", g.gid) for g in identity.groups]
    low = [f"{what} {number}" for what, number in ids if number < least]
    if low:
        raise IdentityError(
            f"The account {identity.username!r} has {', '.join(low)}, below this site's least id {least}: servers never "
            "run with the ids of the nodes' own system accounts and groups. Ask your administrator."
        )


def _group(username: str, attrs: Mapping[str, Any]) -> PosixGroup:
    name = str(_single(attrs, "cn"))
    return PosixGroup(name, _positive_id(f"the group {name!r} of {username!r}", attrs, "gidNumber"))


def identity_from_ldap(
    username: str, user_attrs: Mapping[str, Any], group_entries: Iterable[Mapping[str, Any]]
) -> PosixIdentity:
    """Build the identity from a posixAccount's attributes and the posixGroups that list the user."""
    uid = _positive_id(repr(username), user_attrs, "uidNumber")
    gid = _positive_id(repr(username), user_attrs, "gidNumber")
    groups = tuple(sorted({_group(username, g) for g in group_entries}, key=lambda g: g.gid))
    display_name = str(_single(user_attrs, "cn") or username)
    return PosixIdentity(username=username, uid=uid, gid=gid, display_name=display_name, groups=groups)


def identity_from_mapping(username: str, entry: Mapping[str, Any]) -> PosixIdentity:
    """From a site's static table: {'uid': 10001, 'gid': 10001, 'name': 'Alice', 'groups': {'astro': 20001}}."""
    attrs = {"uidNumber": entry.get("uid"), "gidNumber": entry.get("gid"), "cn": entry.get("name")}
    groups = [{"cn": name, "gidNumber": gid} for name, gid in dict(entry.get("groups") or {}).items()]
    return identity_from_ldap(username, attrs, groups)


def identity_from_auth_state(username: str, auth_state: Mapping[str, Any] | None) -> PosixIdentity | None:
    """From what the LDAP authenticator kept at login (`auth_state_attributes` = uidNumber, gidNumber,
    cn): None if it kept no uidNumber. The authenticator keeps no groups: only the primary one is known."""
    attrs = (auth_state or {}).get("user_attributes") or {}
    if _single(attrs, "uidNumber") is None:
        return None
    return identity_from_ldap(username, attrs, [])
