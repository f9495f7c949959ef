"""Servers no spawner of this hub owns: what a spawn that a hub restart interrupted left behind.

JupyterHub saves a spawner's state (the object id) only after start() returns. A hub that restarts
in the middle of a spawn therefore forgets the service it was making: the new hub finds the server
recorded without an object id, marks it stopped, and nothing removes the service. So once per hub
process, after the backend's first list and after the hub has checked every server its database
said was running (JupyterHub's init_spawners; each of those spawners is pending "check" until its
check ends), each Jovial server of that first list whose owner (jovial.user, jovial.server) has no
active spawner in this hub using that very object name is removed, with its files, one log line each.

What is never removed: a server that runs and is recorded (its spawner is active, with the name its
state kept); a spawn of this process (its spawner is active while it runs, and one that began after
the first list is not in it); anything not labelled as a user's Jovial server (not listed). Owners
are looked at again just before each removal, which the backend serialises with any launch of the
same name. A spawner being stopped owns nothing: its own stop removes what it has. A labelled
server not named the way Jovial names them (`names.OBJECT_NAME_PREFIX`) is another hub's (the
benchmarks' stock hub labels its services so that the docker-proxy lets it make them) and is left alone.

`orphans` (the policy) and `owned_object_names` / `hub_has_checked_its_servers` (reading the hub's
users, in memory) are pure; `sweep_orphans` waits, removes and logs.
"""

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from .backends import Backend, ListedServer
from .names import OBJECT_NAME_PREFIX
from .spec import ServerOwner

CHECK_INTERVAL = 1.0  # seconds between looks at whether the hub has checked its servers


class HubSpawner(Protocol):
    """What the sweep reads of a spawner of the hub (a JovialSpawner)."""

    name: str
    object_name: str

    @property
    def pending(self) -> str | None: ...

    @property
    def active(self) -> bool: ...


class HubUser(Protocol):
    """What the sweep reads of a user of the hub (jupyterhub.user.User)."""

    name: str
    spawners: Mapping[str, HubSpawner]


def owned_object_names(users: Iterable[HubUser]) -> dict[ServerOwner, str]:
    """Each (user, server name) with an active spawner in the hub (not being stopped) -> the object
    name that spawner uses."""
    return {
        ServerOwner(user.name, spawner.name): spawner.object_name
        for user in users
        for spawner in user.spawners.values()
        if spawner.active and spawner.pending != "stop"
    }


def hub_has_checked_its_servers(users: Iterable[HubUser]) -> bool:
    """Whether the hub has checked every server it restored: no spawner is pending "check"."""
    return not any(spawner.pending == "check" for user in users for spawner in user.spawners.values())


def orphans(listed: Iterable[ListedServer], owned: Mapping[ServerOwner, str]) -> list[ListedServer]:
    """The listed servers to remove: those named as Jovial names them whose owner's active spawner
    (if any) uses another name."""
    return [
        server for server in listed
        if server.name.startswith(OBJECT_NAME_PREFIX) and owned.get(server.owner) != server.name
    ]


async def sweep_orphans(backend: Backend, users: Mapping[Any, HubUser], log: logging.Logger) -> None:
    """Remove the orphans of the backend's first list once the hub has checked its servers (see
    the module docstring). `users` is the hub's own (JupyterHub's UserDict). Never raises."""
    try:
        listed = await backend.first_listed()
        while not hub_has_checked_its_servers(users.values()):
            await asyncio.sleep(CHECK_INTERVAL)
        found = orphans(listed, owned_object_names(users.values()))
        log.info("Servers found at start that no spawner of this hub owns: %d of %d", len(found), len(listed))
        for server in found:
            if not orphans([server], owned_object_names(users.values())):
                continue  # its owner started it again meanwhile: that spawn owns the name now
            log.warning("Removing %s (%s): no spawner of this hub owns it (left by a spawn that a hub restart "
                        "interrupted, or by a server the hub no longer knows)", server.name, server.owner)
            try:
                await backend.remove(server.name, server.owner)
            except Exception:
                log.exception("Could not remove %s, which no spawner of this hub owns", server.name)
    except Exception:
        log.exception("Looking for servers that no spawner of this hub owns failed")
