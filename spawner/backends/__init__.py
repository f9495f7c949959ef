"""The backend protocol: what the spawner needs from an orchestrator, whatever it is.

A backend turns a ServerSpec into running objects and reports on them by the spec's name. The
Swarm backend lives in `backends.swarm`, the Kubernetes backend in `backends.kubernetes`; both
implement the same calls.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ..spec import ServerSpec

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


class Backend(Protocol):
    """Runs user servers described by ServerSpecs on some orchestrator."""

    async def launch(self, spec: ServerSpec) -> str:
        """Create every object of `spec` (or none, on failure); return the main object's id."""

    async def wait_running(self, spec: ServerSpec, report: ProgressReport, timeout: float) -> tuple[str, int]:
        """Wait until the server runs; return the (ip, port) the hub should route to.

        Raises LaunchError, with the reason in words, as soon as the server can never run.
        """

    async def status(self, name: str) -> ServerStatus:
        """The state of the server called `name`."""

    async def remove(self, name: str) -> None:
        """Remove every object made for the server called `name`; quiet if there are none."""

    def follow(self, name: str, callback: Callable[[], Awaitable[object]]) -> None:
        """Call `callback` soon after the server called `name` dies, comes back or moves (see follow.py)."""

    def unfollow(self, name: str) -> None:
        """Stop calling back for the server called `name`."""
