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
"""

import asyncio
import math
import ssl
from pathlib import Path
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPBindError, LDAPCertificateError, LDAPException
from ldapauthenticator import LDAPAuthenticator
from ldapauthenticator.ldapauthenticator import TlsStrategy
from tornado import web
from traitlets import Bunch, Float, TraitError, Unicode, validate

DIRECTORY_DOWN = (
    "The site's user directory (LDAP) is not answering, so nobody can log in right now. "
    "Servers already running are not affected. Please try again in a few minutes."
)
DIRECTORY_NOT_TRUSTED = (
    "The site's user directory (LDAP) could not prove that it is the real one (its certificate is not "
    "trusted), so nobody can log in right now; your password was not sent. Please tell the site's administrators."
)


class JovialLDAPAuthenticator(LDAPAuthenticator):
    """LDAPAuthenticator with timeouts, off the event loop, verifying the directory's certificate,
    and with a clear message when LDAP is down or not trusted."""

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

    @validate("ldap_ca_file")
    def _ldap_ca_file_is_a_file(self, proposal: Bunch) -> str:
        if proposal.value and not Path(proposal.value).is_file():
            raise TraitError(f"JovialLDAPAuthenticator.ldap_ca_file {proposal.value!r} is not a file.")
        return proposal.value

    @validate("tls_kwargs")
    def _tls_kwargs_keep_verification(self, proposal: Bunch) -> dict[str, Any]:
        names = proposal.value.get("valid_names") or []
        accepts_any_name = "*" in ([names] if isinstance(names, str) else names)
        if proposal.value.get("validate", ssl.CERT_REQUIRED) != ssl.CERT_REQUIRED or accepts_any_name:
            raise TraitError(
                "JovialLDAPAuthenticator verifies the LDAP server's certificate and name: tls_kwargs may not set "
                "'validate' to anything but ssl.CERT_REQUIRED, nor 'valid_names' to '*'. Trust a private CA with "
                "ldap_ca_file instead."
            )
        return proposal.value

    def verifying_tls(self) -> ldap3.Tls:
        """TLS settings that require a certificate from a trusted CA naming the server; tls_kwargs add to them."""
        return ldap3.Tls(**{"validate": ssl.CERT_REQUIRED, "ca_certs_file": self.ldap_ca_file or None, **self.tls_kwargs})

    def get_connection(self, userdn: str, password: str) -> ldap3.Connection | None:
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
            return await asyncio.to_thread(lambda: asyncio.run(parent(handler, data)))
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
