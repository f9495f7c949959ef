"""Reads users' POSIX identities from the site's LDAP directory (ldap3), with timeouts and a TTL cache.

Lookups run in a worker thread so the hub's event loop never waits on the directory. They share
one bound connection (one lookup at a time: each takes milliseconds and most are cached), opened
on first use and opened again, once, when the server dropped it (an LDAP restart). Only
successful lookups are cached: a user fixed in the directory can spawn again at once.
"""

import asyncio
import math
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPBindError, LDAPException
from ldap3.utils.conv import escape_filter_chars

from .errors import DirectoryMisconfigured, DirectoryUnavailable, IdentityError
from .identity import PosixIdentity, identity_from_ldap

USER_ATTRIBUTES = ["uid", "cn", "uidNumber", "gidNumber"]
TLS_MODES = ("on_connect", "before_bind", "insecure")
TRANSIENT_RESULTS = frozenset({3, 4, 11, 51, 52})  # time/size/admin limit exceeded, busy, unavailable


@dataclass(frozen=True)
class LdapSettings:
    """Where the directory is and how to read it.

    `tls`: "on_connect" (ldaps://), "before_bind" (StartTLS on ldap://) — both verify the server's
    certificate, against `ca_file` or the system's CAs — or "insecure" (plain ldap://, private
    test networks only): a forged answer could name another user's uid.
    """

    url: str
    user_base_dn: str
    group_base_dn: str
    bind_dn: str = ""
    bind_password: str = field(default="", repr=False)
    timeout: float = 5.0
    cache_ttl: float = 300.0
    tls: str = "on_connect"
    ca_file: str = ""

    def __post_init__(self) -> None:
        wanted = {"on_connect": "ldaps://", "before_bind": "ldap://", "insecure": "ldap://"}.get(self.tls)
        if wanted is None:
            raise ValueError(f"JovialSpawner.ldap_tls must be one of {TLS_MODES}, not {self.tls!r}")
        if not self.url.startswith(wanted):
            raise ValueError(f"JovialSpawner.ldap_tls = {self.tls!r} needs an {wanted} URL; ldap_url is {self.url!r}")


class LdapDirectory:
    """username -> PosixIdentity from posixAccount and posixGroup entries."""

    def __init__(self, settings: LdapSettings) -> None:
        self.settings = settings
        self._tls = None
        if settings.tls != "insecure":
            self._tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.ca_file or None)
        self._cache: dict[str, tuple[float, PosixIdentity]] = {}
        self._connection: ldap3.Connection | None = None
        self._lock = threading.Lock()

    async def lookup(self, username: str) -> PosixIdentity:
        """The user's identity, from the cache while it is fresh, else from the directory."""
        cached = self._cache.get(username)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        identity = await asyncio.to_thread(self._lookup_blocking, username)
        self._cache[username] = (time.monotonic() + self.settings.cache_ttl, identity)
        return identity

    def _connect(self) -> ldap3.Connection:
        s = self.settings
        # A new Server for every new connection: ldap3 keeps a server's resolved addresses (even
        # none, while the name did not resolve) for minutes; the directory may have moved meanwhile.
        server = ldap3.Server(s.url, tls=self._tls, connect_timeout=s.timeout, get_info=ldap3.NONE)
        try:
            return ldap3.Connection(
                server,
                user=s.bind_dn or None,
                password=s.bind_password or None,
                auto_bind=ldap3.AUTO_BIND_TLS_BEFORE_BIND if s.tls == "before_bind" else ldap3.AUTO_BIND_NO_TLS,
                read_only=True,
                receive_timeout=math.ceil(s.timeout),  # ldap3 packs it as a C integer
            )
        except LDAPBindError as e:
            raise DirectoryMisconfigured(
                f"The user directory ({s.url}) refused the hub's account {s.bind_dn or '(anonymous)'}: {e}. "
                "An administrator must fix ldap_bind_dn or its password."
            ) from None
        except LDAPException as e:
            raise DirectoryUnavailable(f"The user directory ({s.url}) cannot be reached right now: {e}. Try again in a minute.") from None

    def _lookup_blocking(self, username: str) -> PosixIdentity:
        with self._lock:
            try:
                return self._search(self._connected(), username)
            except LDAPException:
                self._drop_connection()  # dropped by the server (restart, idle timeout): one fresh try
            try:
                return self._search(self._connected(), username)
            except LDAPException as e:
                self._drop_connection()
                raise DirectoryUnavailable(
                    f"The user directory ({self.settings.url}) failed to answer: {e}. Try again in a minute."
                ) from None

    def _connected(self) -> ldap3.Connection:
        if self._connection is None or self._connection.closed:
            self._connection = self._connect()
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.unbind()
            except LDAPException:
                pass
        self._connection = None

    def _entries(self, conn: ldap3.Connection, base: str, search_filter: str, attributes: list[str]) -> dict[str, dict[str, list[Any]]]:
        """The entries a search finds, by DN; a failed search is an error, never "nothing found"."""
        conn.search(base, search_filter, attributes=attributes)
        code, text = conn.result.get("result", 0), conn.result.get("description", "")
        if code in TRANSIENT_RESULTS:
            raise DirectoryUnavailable(f"The user directory ({self.settings.url}) could not answer ({text}). Try again in a minute.")
        if code != 0:
            raise DirectoryMisconfigured(
                f"Searching the user directory below {base!r} failed ({text}): an administrator must check "
                "ldap_user_base_dn, ldap_group_base_dn and what the hub's account may read."
            )
        return {e.entry_dn: e.entry_attributes_as_dict for e in conn.entries}

    def _search(self, conn: ldap3.Connection, username: str) -> PosixIdentity:
        s = self.settings
        name = escape_filter_chars(username)
        users = self._entries(conn, s.user_base_dn, f"(&(objectClass=posixAccount)(uid={name}))", USER_ATTRIBUTES)
        if not users:
            raise IdentityError(f"There is no POSIX account for {username!r} in the user directory.")
        if len(users) > 1:
            raise IdentityError(f"The user directory has {len(users)} accounts named {username!r}; ask your administrator.")
        [(dn, attrs)] = users.items()
        names = sorted(str(v) for v in attrs.get("uid", []))
        if username not in names:  # LDAP compares uids ignoring case: 'Alice' finds alice's entry
            raise IdentityError(
                f"The user directory found the account {names} for {username!r} (LDAP ignores case), but a server "
                f"only runs as an account named exactly {username!r}. Ask your administrator."
            )
        account = identity_from_ldap(username, attrs, [])
        owners = self._entries(conn, s.user_base_dn, f"(&(objectClass=posixAccount)(uidNumber={account.uid}))", ["uid"])
        sharing = sorted({str(v) for other, e in owners.items() if other != dn for v in e.get("uid") or [other]})
        if sharing:
            raise IdentityError(
                f"The uid {account.uid} of {username!r} is also the uid of {sharing}: two people would own "
                "the same files. Ask your administrator to give each account its own uidNumber."
            )
        groups = self._entries(
            conn, s.group_base_dn, f"(&(objectClass=posixGroup)(|(memberUid={name})(gidNumber={account.gid})))", ["cn", "gidNumber"]
        )
        return identity_from_ldap(username, attrs, groups.values())
