"""The backend protocol: what the spawner needs from an orchestrator, whatever it is.

A backend turns a ServerSpec into running objects and reports on them by the spec's name and owner:
an object under that name that Jovial did not make for that owner (its jovial.user and jovial.server
labels, `ownership.py`) is never reported as the server, and never removed. The Swarm backend lives
in `backends.swarm`, the Kubernetes backend in `backends.kubernetes`; both implement the same calls.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ..spec import ServerOwner, ServerSpec

ProgressReport = Callable[[str, int], None]
"""report(message, percent): a step of the spawn, in words a user understands."""


@dataclass(frozen=True)
class ServerStatus:
    """Whether a server is alive (running or on its way), and if not, why, in words.

    `address` is where a running server answers on its network (None while it is on its way):
    it changes when the orchestrator moves or restarts the server, and the hub's route must follow.
    """

    alive: bool
    reason: str = ""
    address: str | None = None


@dataclass(frozen=True)
class ListedServer:
    """A Jovial server as a backend's list saw it: its object name and whose it is by its labels."""

    name: str
    owner: ServerOwner


class Backend(Protocol):
    """Runs user servers described by ServerSpecs on some orchestrator."""

    async def launch(self, spec: ServerSpec) -> str:
        """Create every object of `spec` (or none, on failure); return the main object's id."""

    async def wait_running(self, spec: ServerSpec, report: ProgressReport, timeout: float) -> tuple[str, int]:
        """Wait until the server runs; return the (ip, port) the hub should route to.

        Raises LaunchError, with the reason in words, as soon as the server can never run.
        """

    async def status(self, name: str, owner: ServerOwner) -> ServerStatus:
        """The state of `owner`'s server called `name`; not alive, saying so, if what goes by that
        name is not Jovial's server for `owner`."""

    async def remove(self, name: str, owner: ServerOwner) -> None:
        """Remove every object made for `owner`'s server called `name`; quiet if there are none.

        An object of that name that is not Jovial's for `owner` is left alone and logged, and then
        NameTaken is raised. A name's removal and its launch never overlap."""

    async def first_listed(self) -> list[ListedServer]:
        """The Jovial servers of the backend's first list in this process (waiting for it)."""

    def follow(self, name: str, owner: ServerOwner, callback: Callable[[], Awaitable[object]]) -> None:
        """Call `callback` soon after `owner`'s server called `name` dies, comes back or moves (see follow.py)."""

    def unfollow(self, name: str) -> None:
        """Stop calling back for the server called `name`."""
