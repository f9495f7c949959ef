"""Whose server an orchestrator object is, by its labels, and one name's objects handled at a time.

Object names are derived from the username and server name (`names.py`), but a name alone proves
nothing: a site may run a service of its own called `jupyter-x`, and anyone who can create objects
can label one for another user. So before a backend reports on an object or removes it, it reads
the object's labels: Jovial's server for (user, server name) carries `jovial.managed=true`,
`jovial.user=<user>` and `jovial.server=<server name>`, exactly. Pure, except `NameLocks` (asyncio
locks, no I/O). Shared by the Swarm and Kubernetes backends.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from ..errors import NameTaken
from ..spec import MANAGED_LABEL, SERVER_LABEL, USER_LABEL, ServerOwner


def owner_of(labels: Mapping[str, str]) -> ServerOwner | None:
    """Whose Jovial server the labels say an object is; None if they do not make it one of Jovial's."""
    if labels.get(MANAGED_LABEL) != "true" or not isinstance(labels.get(USER_LABEL), str):
        return None
    return ServerOwner(labels[USER_LABEL], labels.get(SERVER_LABEL) or "")


def why_not_owned(labels: Mapping[str, str], owner: ServerOwner) -> str | None:
    """Why an object with these labels is not Jovial's server for `owner` (None: it is), for the hub's log."""
    found = owner_of(labels)
    if found == owner:
        return None
    if found is None:
        return f"it does not carry Jovial's labels {MANAGED_LABEL}=true and {USER_LABEL}"
    return f"it is labelled for {found}"


def left_alone(log: logging.Logger, kind: str, name: str, owner: ServerOwner, why: str) -> NameTaken:
    """Log, for the operator, that the `kind` `name` is not removed for `owner` and why; the error
    for the user."""
    log.warning("Not removing the %s %s for %s: %s; an operator must look at it", kind, name, owner, why)
    return NameTaken(kind, name)


def is_removable_file(labels: Mapping[str, str], owner: ServerOwner) -> bool:
    """Whether a server's file object (Swarm config) found by its jovial.object label may be removed
    with `owner`'s server: it is labelled for `owner`, or carries no owner at all (made by a Jovial
    that labelled configs with jovial.object only)."""
    return USER_LABEL not in labels or owner_of(labels) == owner


class NameLocks:
    """One lock per object name: the objects of one name are made or removed by one call at a time,
    so a removal (a stop, the orphan sweep) never deletes what a launch of the same name is making."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: dict[str, int] = {}

    @asynccontextmanager
    async def held(self, name: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(name, asyncio.Lock())
        self._holders[name] = self._holders.get(name, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._holders[name] -= 1
            if not self._holders[name]:  # nobody holds or waits: forget the name
                del self._holders[name], self._locks[name]
