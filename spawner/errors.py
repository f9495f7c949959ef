"""Errors a user or an operator can act on: each message says what is wrong and with what."""


class JovialError(Exception):
    """A spawn-stopping problem whose message is meant for the person who caused it."""


class InvalidUsername(JovialError):
    """The username cannot safely name a home directory or a service."""


class IdentityError(JovialError):
    """The user's POSIX identity could not be found or is unsafe to run as."""


class StorageError(JovialError):
    """The user's home on the shared filesystem could not be made ready."""


class LaunchError(JovialError):
    """The orchestrator refused or failed to run the user's server."""
