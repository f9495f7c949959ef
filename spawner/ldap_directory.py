"""Reads users' POSIX identities from the site's LDAP directory (ldap3), with timeouts and a TTL cache.

Lookups run in a worker thread so the hub's event loop never waits on the directory. They share
one bound connection (one lookup at a time: each takes milliseconds and most are cached), opened
on first use and opened again, once, when the server dropped it (an LDAP restart). Only
successful lookups are cached: a user fixed in the directory can spawn again at once.
"""

import asyncio
import math
import threading
import time
from dataclasses import dataclass

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from .errors import DirectoryUnavailable, IdentityError
from .identity import PosixIdentity, identity_from_ldap

USER_ATTRIBUTES = ["uid", "cn", "uidNumber", "gidNumber", "homeDirectory"]


@dataclass(frozen=True)
class LdapSettings:
    """Where the directory is and how to read it."""

    url: str
    user_base_dn: str
    group_base_dn: str
    bind_dn: str = ""
    bind_password: str = ""
    timeout: float = 5.0
    cache_ttl: float = 300.0


class LdapDirectory:
    """username -> PosixIdentity from posixAccount and posixGroup entries."""

    def __init__(self, settings: LdapSettings) -> None:
        self.settings = settings
        self._server = ldap3.Server(settings.url, connect_timeout=settings.timeout, get_info=ldap3.NONE)
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
        try:
            return ldap3.Connection(
                self._server,
                user=s.bind_dn or None,
                password=s.bind_password or None,
                auto_bind=True,
                read_only=True,
                receive_timeout=math.ceil(s.timeout),  # ldap3 packs it as a C integer
            )
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

    def _search(self, conn: ldap3.Connection, username: str) -> PosixIdentity:
        s = self.settings
        name = escape_filter_chars(username)
        conn.search(s.user_base_dn, f"(&(objectClass=posixAccount)(uid={name}))", attributes=USER_ATTRIBUTES)
        users = [e.entry_attributes_as_dict for e in conn.entries]
        if not users:
            raise IdentityError(f"There is no POSIX account for {username!r} in the user directory.")
        if len(users) > 1:
            raise IdentityError(f"The user directory has {len(users)} accounts named {username!r}; ask your administrator.")
        account = identity_from_ldap(username, users[0], [])
        conn.search(s.user_base_dn, f"(&(objectClass=posixAccount)(uidNumber={account.uid}))", attributes=["uid"])
        sharing = sorted({str(v) for e in conn.entries for v in e.entry_attributes_as_dict.get("uid", [])} - {username})
        if sharing:
            raise IdentityError(
                f"The uid {account.uid} of {username!r} is also the uid of {sharing}: two people would own "
                "the same files. Ask your administrator to give each account its own uidNumber."
            )
        conn.search(
            s.group_base_dn,
            f"(&(objectClass=posixGroup)(|(memberUid={name})(gidNumber={account.gid})))",
            attributes=["cn", "gidNumber"],
        )
        groups = [e.entry_attributes_as_dict for e in conn.entries]
        return identity_from_ldap(username, users[0], groups)
