"""JovialLDAPAuthenticator: ldapauthenticator's LDAPAuthenticator, safe against a down, slow or forged directory.

The stock authenticator talks to LDAP with blocking ldap3 calls on the hub's event loop and with
no timeouts: a directory that accepts connections but does not answer freezes the whole hub, and
one that is down turns every login into a 500 error. Here each LDAP connection has a connect and
a receive timeout, a login's LDAP work runs in a worker thread, and a directory that cannot be
reached gives the person logging in a 503 page that says so (and the operator a log line).

The stock authenticator also builds ldap3's TLS settings with ldap3's default, which verifies
nothing: anyone on the path could pose as the directory and read every password. Here logins over
ldaps:// (tls_strategy "on_connect") and StartTLS ("before_bind") verify the server's certificate
against `ldap_ca_file` (or the system's CAs) and check that it names `server_address`; a
certificate that fails is refused before the password is sent, with a 503 page that says so.

The stock authenticator checks who may log in only at login: someone removed from the allowed
groups, or whose account is deleted, goes on starting servers with their cookie or API token. Here
JupyterHub asks the directory again before every spawn (refresh_pre_spawn) and every
auth_refresh_age seconds on the user's requests: refresh_user re-reads, with the hub's own account
(ldap_bind_dn), whether the account still exists and would still pass the login's rules (search_filter,
allowed_groups, allowed_users, blocked_users). A user who would not is refused (JupyterHub answers
403, and the next login is refused too), with a log line naming why. When the directory cannot
answer, sessions and running servers go on, but the spawn is refused with a 503 that says so.
"""

import asyncio
import math
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import ldap3
from jupyterhub.utils import maybe_future
from ldap3.abstract.entry import Entry
from ldap3.core.exceptions import LDAPBindError, LDAPCertificateError, LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn
from ldapauthenticator import LDAPAuthenticator
from ldapauthenticator.ldapauthenticator import TlsStrategy
from tornado import web
from traitlets import Bunch, Float, List, TraitError, Unicode, default, validate

from .errors import DirectoryUnavailable

if TYPE_CHECKING:
    from jupyterhub.spawner import Spawner
    from jupyterhub.user import User

DIRECTORY_DOWN = (
    "The site's user directory (LDAP) is not answering, so nobody can log in right now. "
    "Servers already running are not affected. Please try again in a few minutes."
)
DIRECTORY_NOT_TRUSTED = (
    "The site's user directory (LDAP) could not prove that it is the real one (its certificate is not "
    "trusted), so nobody can log in right now; your password was not sent. Please tell the site's administrators."
)
DIRECTORY_DOWN_AT_SPAWN = (
    "The site's user directory (LDAP) cannot be reached right now, so the hub cannot confirm that you may still "
    "use it, and no server can start. Servers already running are not affected. Please try again in a few minutes."
)
Scope = Literal["BASE", "LEVEL", "SUBTREE"]  # ldap3.BASE, ldap3.LEVEL, ldap3.SUBTREE
NO_SUCH_OBJECT = 32  # the LDAP result code of a search whose base entry does not exist


class StandingUnknown(Exception):
    """The directory could not say whether a user may still use the hub (it refused the hub's account, or a
    search failed); a directory that is down or does not answer raises LDAPException or OSError instead."""


@dataclass(frozen=True)
class Standing:
    """What the directory says of a user now, read with the hub's account: the facts a login checks."""

    dn: str | None  # the user's entry: the first of bind_dn_template's DNs that exists; None: no account
    matches_search_filter: bool  # True when no search_filter is set
    groups: list[str]  # those of allowed_groups that list the user
    admin: bool | None = None  # whether one of admin_groups lists the user; None: no admin_groups are set


class JovialLDAPAuthenticator(LDAPAuthenticator):  # type: ignore[misc]  # ldapauthenticator ships no types
    """LDAPAuthenticator with timeouts, off the event loop, verifying the directory's certificate,
    with a clear message when LDAP is down or not trusted, and asking the directory again before
    every spawn whether the user may still use the hub.

    Defaults changed from JupyterHub's: refresh_pre_spawn is True (refresh_user before every spawn)
    and auth_refresh_strict is True (a user refresh_user refuses is refused on token-authenticated
    requests too: JupyterHub 6.1 would otherwise keep the old answer for API tokens, and a token could
    go on starting servers). auth_refresh_age keeps JupyterHub's 300 s: each user's requests are
    re-checked at most every 5 minutes (one LDAP bind and a search per allowed group), so a removed
    user's browser session and tokens stop working within about 5 minutes, and spawns at once.
    """

    ldap_timeout = Float(
        5.0,
        config=True,
        help="Seconds a login waits for the LDAP server to connect, and then for each of its answers, "
        "before the login fails with a 'directory not answering' page.",
    )

    ldap_ca_file = Unicode(
        "",
        config=True,
        help="PEM file with the CA certificate(s) logins trust for the LDAP server's certificate "
        "(tls_strategy 'on_connect' or 'before_bind'); empty: the system's CAs. The certificate must "
        "also name server_address. A 'ca_certs_file' in tls_kwargs takes precedence.",
    )

    ldap_bind_dn = Unicode(
        "",
        config=True,
        help="DN of the hub's own LDAP account, with which it re-checks users before every spawn and every "
        "auth_refresh_age seconds: that their account still exists at bind_dn_template, still matches "
        "search_filter and is still in one of allowed_groups. It must be able to read users' entries and the "
        "allowed groups (the spawner's account, JovialSpawner.ldap_bind_dn, reads the same). Empty: an anonymous bind.",
    )

    ldap_bind_password_file = Unicode(
        "",
        config=True,
        help="File holding the password of ldap_bind_dn (surrounding whitespace ignored), read at each re-check, "
        "e.g. a Docker secret. Empty: no password.",
    )

    admin_groups = List(
        Unicode(),
        config=True,
        help="DNs of LDAP groups whose members are the hub's admins (the admin panel; every user's servers). "
        "A group lists a member as allowed_groups do (group_search_filter: member or uniqueMember with their DN, "
        "memberUid with their name), read with ldap_bind_dn at each login and re-check: someone added to a group "
        "becomes an admin, and someone removed stops being one, within auth_refresh_age. With admin_groups set, "
        "the directory and admin_users together decide at each re-check: admin rights given otherwise (the admin "
        "panel, a role in load_roles) are taken back then. Empty: the directory makes nobody an admin, and "
        "JupyterHub's admin_users applies alone.",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Users whose latest re-check could not reach the directory: pre_spawn_start refuses their spawns.
        self._unconfirmed: set[str] = set()

    @default("refresh_pre_spawn")
    def _recheck_before_every_spawn(self) -> bool:
        return True

    @default("auth_refresh_strict")
    def _refuse_tokens_of_users_no_longer_allowed(self) -> bool:
        return True

    @validate("auth_refresh_age")
    def _auth_refresh_age_keeps_the_recheck(self, proposal: Bunch) -> int:
        age: int = proposal.value
        if age <= 0:
            raise TraitError(
                "JovialLDAPAuthenticator.auth_refresh_age must be more than 0: at 0 JupyterHub skips the re-check "
                "before spawns too (refresh_pre_spawn), and users no longer allowed could go on starting servers."
            )
        return age

    @validate("lookup_dn")
    def _no_lookup_dn(self, proposal: Bunch) -> bool:
        lookup_dn: bool = proposal.value
        if lookup_dn:
            raise TraitError(
                "JovialLDAPAuthenticator re-checks users at the DNs of bind_dn_template and does not support lookup_dn."
            )
        return lookup_dn

    @validate("ldap_ca_file", "ldap_bind_password_file")
    def _names_a_file(self, proposal: Bunch) -> str:
        path: str = proposal.value
        if path and not Path(path).is_file():
            raise TraitError(f"JovialLDAPAuthenticator.{proposal.trait.name} {path!r} is not a file.")
        return path

    @validate("tls_kwargs")
    def _tls_kwargs_keep_verification(self, proposal: Bunch) -> dict[str, Any]:
        tls_kwargs: dict[str, Any] = proposal.value
        names = tls_kwargs.get("valid_names") or []
        accepts_any_name = "*" in ([names] if isinstance(names, str) else names)
        if tls_kwargs.get("validate", ssl.CERT_REQUIRED) != ssl.CERT_REQUIRED or accepts_any_name:
            raise TraitError(
                "JovialLDAPAuthenticator verifies the LDAP server's certificate and name: tls_kwargs may not set "
                "'validate' to anything but ssl.CERT_REQUIRED, nor 'valid_names' to '*'. Trust a private CA with "
                "ldap_ca_file instead."
            )
        return tls_kwargs

    def verifying_tls(self) -> ldap3.Tls:
        """TLS settings that require a certificate from a trusted CA naming the server; tls_kwargs add to them."""
        return ldap3.Tls(**{"validate": ssl.CERT_REQUIRED, "ca_certs_file": self.ldap_ca_file or None, **self.tls_kwargs})

    def get_connection(self, userdn: str | None, password: str | None) -> ldap3.Connection | None:
        """A connection bound as `userdn` (None if the password is wrong), with timeouts.

        Raises LDAPException (or OSError) when the directory cannot be reached, does not answer, or
        its certificate fails verification (then the exception is also an ssl.SSLCertVerificationError
        or an LDAPCertificateError)."""
        use_ssl = self.tls_strategy == TlsStrategy.on_connect
        auto_bind = ldap3.AUTO_BIND_TLS_BEFORE_BIND if self.tls_strategy == TlsStrategy.before_bind else ldap3.AUTO_BIND_NO_TLS
        server = ldap3.Server(
            self.server_address,
            port=self.server_port,
            use_ssl=use_ssl,
            tls=self.verifying_tls(),
            connect_timeout=self.ldap_timeout,
            get_info=ldap3.NONE,  # not the server's schema at every login: a login needs none of it
        )
        try:
            return ldap3.Connection(
                server,
                user=userdn,
                password=password,
                auto_bind=auto_bind,
                receive_timeout=math.ceil(self.ldap_timeout),  # ldap3 wants whole seconds here
            )
        except LDAPBindError:
            self.log.debug("LDAP bind of %s refused", userdn)
            return None

    async def authenticate(self, handler: web.RequestHandler, data: dict[str, str]) -> dict[str, Any] | None:
        parent = super().authenticate  # blocking work inside a coroutine that never awaits
        try:
            model: dict[str, Any] | None = await asyncio.to_thread(lambda: asyncio.run(parent(handler, data)))
            if model is not None and self.admin_groups:
                model["admin"] = await self.admin_at_login(model["name"])
            return model
        except (ssl.SSLCertVerificationError, LDAPCertificateError) as e:  # first: the former is an OSError too
            self.log.error(
                "Login of %r refused: the LDAP server's certificate failed verification (%s). Logins trust the CAs in "
                "%s and need a certificate naming %r.", data.get("username"), e, self.ldap_ca_file or "the system's store",
                self.server_address,
            )
            raise web.HTTPError(503, DIRECTORY_NOT_TRUSTED) from None
        except (LDAPException, OSError) as e:
            self.log.error("Login of %r failed: the LDAP server does not answer (%s)", data.get("username"), e)
            raise web.HTTPError(503, DIRECTORY_DOWN) from None

    async def admin_at_login(self, username: str) -> bool | None:
        """Whether one of admin_groups lists the user, read with the hub's account; None (admin left as
        it was) when the hub's account cannot read it, with a log line saying why."""
        try:
            return self.admin_by_directory(username, await asyncio.to_thread(self.read_standing, username))
        except StandingUnknown as e:
            self.log.error("Could not read whether %s is an admin (%s): their admin rights stay as they were.", username, e)
            return None

    def admin_by_directory(self, username: str, standing: Standing) -> bool | None:
        """Whether the user is an admin: a member of admin_groups, or in admin_users; None without admin_groups."""
        return None if standing.admin is None else standing.admin or username in self.admin_users

    def user_dns(self, username: str) -> list[str]:
        """The DNs a login of `username` tries, in order (bind_dn_template, the name escaped as the login does)."""
        return [template.format(username=escape_rdn(username)) for template in self.bind_dn_template]

    def hub_connection(self) -> ldap3.Connection:
        """A connection bound as the hub's own account (ldap_bind_dn), with the logins' timeouts and TLS checks."""
        password = Path(self.ldap_bind_password_file).read_text().strip() if self.ldap_bind_password_file else None
        connection = self.get_connection(self.ldap_bind_dn or None, password)
        if connection is None:
            raise StandingUnknown(
                f"the directory refused the hub's account {self.ldap_bind_dn or '(anonymous)'}: check ldap_bind_dn "
                "and ldap_bind_password_file"
            )
        return connection

    @staticmethod
    def entries_found(connection: ldap3.Connection, base: str, scope: Scope, search_filter: str, attributes: list[str]) -> list[Entry]:
        """The entries a search finds; none when its base entry does not exist. Any other failure raises
        StandingUnknown: a directory that cannot answer never counts as "not found"."""
        connection.search(search_base=base, search_scope=scope, search_filter=search_filter, attributes=attributes)
        code = connection.result.get("result", 0)
        if code == NO_SUCH_OBJECT:
            return []
        if code != 0:
            raise StandingUnknown(f"searching {base!r} failed: {connection.result.get('description')}")
        return list(connection.entries)

    def read_standing(self, username: str) -> Standing:
        """The facts a login of `username` would check, read now with the hub's account (blocking).

        With the login's own settings: the user's entry is the first of bind_dn_template's DNs that exists;
        search_filter must find exactly one entry; an allowed group lists the user when group_search_filter
        matches it (member or uniqueMember with the DN, memberUid with the name)."""
        connection = self.hub_connection()
        try:
            existing = (dn for dn in self.user_dns(username) if self.entries_found(connection, dn, ldap3.BASE, "(objectClass=*)", []))
            dn = next(existing, None)
            if dn is None:
                return Standing(dn=None, matches_search_filter=False, groups=[], admin=False if self.admin_groups else None)
            name = escape_filter_chars(username)
            user_filter = self.search_filter.format(userattr=self.user_attribute, username=name)
            matches = not self.search_filter or (
                len(self.entries_found(connection, self.user_search_base, ldap3.SUBTREE, user_filter, self.attributes)) == 1
            )
            group_filter = self.group_search_filter.format(userdn=escape_filter_chars(dn), uid=name)
            def lists_the_user(group: str) -> bool:
                return bool(self.entries_found(connection, group, ldap3.BASE, group_filter, self.group_attributes))

            groups = [group for group in self.allowed_groups or [] if lists_the_user(group)]
            admin = any(lists_the_user(group) for group in self.admin_groups) if self.admin_groups else None
            return Standing(dn=dn, matches_search_filter=matches, groups=groups, admin=admin)
        finally:
            connection.unbind()

    async def recheck(self, username: str) -> tuple[str | None, Standing]:
        """Why a login of `username` would be refused now, by the login's own rules (None: it would not),
        and what the directory says of them.

        Raises StandingUnknown, LDAPException or OSError when the directory cannot tell."""
        standing = await asyncio.to_thread(self.read_standing, username)
        if standing.dn is None:
            return f"no account {' or '.join(self.user_dns(username))} in the directory", standing
        if not standing.matches_search_filter:
            return f"the account no longer matches search_filter {self.search_filter!r}", standing
        auth_model = {"name": username, "auth_state": {"ldap_groups": standing.groups}}
        if not await maybe_future(self.check_blocked_users(username, auth_model)):
            return "blocked_users lists them", standing
        if not (self.allow_all or await maybe_future(self.check_allowed(username, auth_model))):
            return f"a member of none of allowed_groups {self.allowed_groups or []}", standing
        return None, standing

    async def refresh_user(self, user: "User", handler: web.RequestHandler | None = None) -> bool | dict[str, Any]:
        """Whether `user` may still use the hub, asked of the directory. JupyterHub calls this before every
        spawn and every auth_refresh_age seconds on the user's requests.

        False: JupyterHub refuses the spawn (403) and the user's requests until they log in again, and that
        login is refused while the reason holds. A directory that cannot answer gives True, so that sessions
        and running servers go on, and pre_spawn_start then refuses the spawn. With admin_groups, an allowed
        user's model with `admin` as the directory says now (JupyterHub grants or takes the admin role)."""
        try:
            refusal, standing = await self.recheck(user.name)
        except (StandingUnknown, LDAPException, OSError) as e:
            self._unconfirmed.add(user.name)
            self.log.error(
                "Could not re-check %s in the directory (%s): their sessions go on, but no server of theirs starts "
                "until the directory answers.", user.name, e,
            )
            return True
        self._unconfirmed.discard(user.name)
        if refusal:
            self.log.warning(
                "%s may no longer use this hub: %s. Their spawns and requests are refused until they log in again, "
                "which is refused while this holds.", user.name, refusal,
            )
            if handler is not None and not hasattr(handler, "_token_authenticated"):
                # JupyterHub 6.1.1's refresh_auth reads this flag, which only a token-authenticated request
                # sets: on a cookie request the refusal would become an AttributeError (a 500 page and a
                # traceback) instead of its 403 or login page. Not token-authenticated is what it means.
                # JupyterHub's BaseHandler attribute, which tornado's RequestHandler (the type here) lacks.
                handler._token_authenticated = False  # type: ignore[attr-defined]
            return False
        admin = self.admin_by_directory(user.name, standing)
        if admin is None:
            return True
        if admin != user.admin:
            self.log.info("%s %s admin: %s", user.name, "is now an" if admin else "is no longer an",
                          "a member of admin_groups" if standing.admin else "a member of none of admin_groups")
        return {"name": user.name, "admin": admin}

    def pre_spawn_start(self, user: "User", spawner: "Spawner") -> None:
        """Refuse the spawn (503) when the re-check made for it could not reach the directory.

        refresh_user cannot refuse it itself without ending the user's sessions too: JupyterHub also calls
        it on any request once auth_refresh_age has passed, and such a call at the start of a spawn request
        is the only re-check that spawn gets (JupyterHub refreshes a user at most once per request)."""
        if user.name in self._unconfirmed:
            raise DirectoryUnavailable(DIRECTORY_DOWN_AT_SPAWN)
