"""JovialLDAPAuthenticator: ldapauthenticator's LDAPAuthenticator, safe against a down or slow directory.

The stock authenticator talks to LDAP with blocking ldap3 calls on the hub's event loop and with
no timeouts: a directory that accepts connections but does not answer freezes the whole hub, and
one that is down turns every login into a 500 error. Here each LDAP connection has a connect and
a receive timeout, a login's LDAP work runs in a worker thread, and a directory that cannot be
reached gives the person logging in a 503 page that says so (and the operator a log line).
"""

import asyncio
import math
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPBindError, LDAPException
from ldapauthenticator import LDAPAuthenticator
from ldapauthenticator.ldapauthenticator import TlsStrategy
from tornado import web
from traitlets import Float

DIRECTORY_DOWN = (
    "The site's user directory (LDAP) is not answering, so nobody can log in right now. "
    "Servers already running are not affected. Please try again in a few minutes."
)


class JovialLDAPAuthenticator(LDAPAuthenticator):
    """LDAPAuthenticator with timeouts, off the event loop, and a clear message when LDAP is down."""

    ldap_timeout = Float(
        5.0,
        config=True,
        help="Seconds a login waits for the LDAP server to connect, and then for each of its answers, "
        "before the login fails with a 'directory not answering' page.",
    )

    def get_connection(self, userdn: str, password: str) -> ldap3.Connection | None:
        """A connection bound as `userdn` (None if the password is wrong), with timeouts.

        Raises LDAPException (or OSError) when the directory cannot be reached or does not answer."""
        use_ssl = self.tls_strategy == TlsStrategy.on_connect
        auto_bind = ldap3.AUTO_BIND_TLS_BEFORE_BIND if self.tls_strategy == TlsStrategy.before_bind else ldap3.AUTO_BIND_NO_TLS
        server = ldap3.Server(
            self.server_address,
            port=self.server_port,
            use_ssl=use_ssl,
            tls=ldap3.Tls(**self.tls_kwargs),
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
            return await asyncio.to_thread(lambda: asyncio.run(parent(handler, data)))
        except (LDAPException, OSError) as e:
            self.log.error("Login of %r failed: the LDAP server does not answer (%s)", data.get("username"), e)
            raise web.HTTPError(503, DIRECTORY_DOWN) from None
