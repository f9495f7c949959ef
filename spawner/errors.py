"""Errors a user or an operator can act on: each message says what is wrong and with what.

They are JupyterHub SpawnExceptions: the hub logs them without a traceback, shows the message
as it is in the progress bar and on the error page, and answers REST API spawns with the status
below (400: the request or the account is at fault; 503: try again later; 500: the site's side).
"""

from jupyterhub.spawner import SpawnException


class JovialError(SpawnException):  # type: ignore[misc]  # jupyterhub ships no types: SpawnException is Any
    """A spawn-stopping problem whose message is meant for the person who caused it."""

    reason_label = "error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=self.reason_label, status_code=self.status)
        self.jupyterhub_message = message


class InvalidUsername(JovialError):
    """The username cannot safely name a home directory or a service."""

    reason_label, status = "invalid-username", 400


class OptionsError(JovialError):
    """The user asked for something this hub does not offer."""

    reason_label, status = "invalid-options", 400


class IdentityError(JovialError):
    """The user's POSIX identity could not be found or is unsafe to run as."""

    reason_label, status = "identity", 400


class DirectoryUnavailable(IdentityError):
    """The user directory (LDAP) cannot be reached or did not answer: try again later."""

    reason_label, status = "directory-unavailable", 503


class DirectoryMisconfigured(JovialError):
    """The hub's LDAP settings are wrong (bind refused, base DN missing, TLS mismatch): an operator must act."""

    reason_label = "directory-configuration"


class SiteMisconfigured(JovialError):
    """The site's settings for this server cannot be honoured as they are (e.g. a limit too small
    to be one, from a callable the hub could not check at start): an operator must act."""

    reason_label = "site-configuration"


class StorageError(JovialError):
    """The user's home on the shared filesystem could not be made ready."""

    reason_label = "storage"


class LaunchError(JovialError):
    """The orchestrator refused or failed to run the user's server."""

    reason_label = "launch"


class NameTaken(LaunchError):
    """An object under the name of the user's server exists that Jovial did not make for that server
    (a site's own service, one labelled for someone else): it is left alone, and an operator must act."""

    reason_label = "name-taken"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"A {kind} named {name} exists that Jovial did not make for you; ask an administrator.")
        self.kind = kind
        self.name = name
