"""Following running servers: tell the spawner at once when its server dies or moves.

The hub polls each server only every `poll_interval` (30 s by default), which is how long a
user would wait for their route after the orchestrator restarted their server elsewhere (a
crash, a lost node), and how long a dead server would look alive. A backend's watcher already
sees every change; `Followers` turns its changes into a callback per followed server, called
when the server's (alive, address) pair changes. One task per backend, whatever the number of
servers: each change of the watcher's state costs one `status()` per followed server, read from
the watcher's memory (no orchestrator call). A server's callback never runs twice at once.

Backend-neutral: it needs only "wait for the watcher's next change" and `status(name, owner)`.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass

from ..spec import ServerOwner
from . import ServerStatus

StatusChanged = Callable[[], Awaitable[object]]
"""callback(): called (as a task of its own) after the followed server's status changed."""

MIN_GAP = 0.2  # seconds: a burst of watcher changes is looked at once
# Seconds the watcher is hurried while a server stays on its way back. Swarm places and starts a
# rescheduled server within seconds; one still without an address after this waits for something
# that may take hours (a node with room, a node coming back), and is looked at at the watcher's
# normal pace from then on (the watcher hurries again for any other server on its way back).
HURRY_LIMIT = 120.0


@dataclass(frozen=True, eq=False)
class _Followed:
    """A followed server: whose it is, and whom to call when its status changes."""

    owner: ServerOwner
    callback: StatusChanged


class Followers:
    """The servers whose status changes someone wants to hear about (see the module docstring).

    `next_change(after)` waits until the watcher's state is newer than version `after` and
    returns the new version; `status(name, owner)` is the backend's own. While a followed server is on
    its way back (alive, no address yet: restarting, rescheduled), the watcher is asked to
    `hurry` so that its new address is seen within seconds, for at most `hurry_limit` seconds.
    """

    def __init__(
        self,
        next_change: Callable[[int], Awaitable[int]],
        status: Callable[[str, ServerOwner], Awaitable[ServerStatus]],
        log: logging.Logger,
        hurry: Callable[[], AbstractContextManager[object]] = nullcontext,
        hurry_limit: float = HURRY_LIMIT,
    ) -> None:
        self._next_change = next_change
        self._status = status
        self._log = log
        self._hurry = hurry
        self._hurry_limit = hurry_limit
        self._followed: dict[str, _Followed] = {}
        self._seen: dict[str, tuple[bool, str | None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._calls: dict[str, asyncio.Task[object]] = {}  # the running call of each server

    def follow(self, name: str, owner: ServerOwner, callback: StatusChanged) -> None:
        """Call `callback` whenever `owner`'s server `name` dies, comes back or moves (replacing any earlier one)."""
        self._followed[name] = _Followed(owner, callback)
        self._seen.pop(name, None)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def unfollow(self, name: str) -> None:
        """Stop calling back for `name`. A call that is running is left to finish: the spawner's
        poll unfollows from inside that very call (JupyterHub's poll_and_notify stops polling
        before it tells the hub the server is gone)."""
        self._followed.pop(name, None)
        self._seen.pop(name, None)

    async def close(self) -> None:
        """Stop following every server; the backend closes it with its watcher."""
        tasks = [t for t in (self._task, *self._calls.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        version, hurrying = 0, False
        waiting_since: dict[str, float] = {}  # the servers on their way back, since when
        with ExitStack() as hurry:
            while self._followed:
                try:
                    version = await self._next_change(version)
                    on_its_way = await self._look()
                except Exception:
                    self._log.exception("Following the servers' status failed; trying again")
                    await asyncio.sleep(MIN_GAP)
                    continue
                now = loop.time()
                waiting_since = {name: waiting_since.get(name, now) for name in on_its_way}
                hurry_on = any(now - since <= self._hurry_limit for since in waiting_since.values())
                if hurry_on and not hurrying:
                    hurry.enter_context(self._hurry())
                elif hurrying and not hurry_on:
                    hurry.close()
                hurrying = hurry_on
                await asyncio.sleep(MIN_GAP)

    async def _look(self) -> set[str]:
        """Call back every followed server whose status changed; return those on their way back."""
        on_its_way: set[str] = set()
        for name, followed in list(self._followed.items()):
            status = await self._status(name, followed.owner)
            if self._followed.get(name) is not followed:
                continue  # unfollowed (or followed anew) meanwhile
            seen = (status.alive, status.address)
            if status.alive and status.address is None:
                on_its_way.add(name)
            # While the last call for the server runs, a change is left for the next look: the
            # callback never runs twice at once for one server.
            if self._seen.get(name) != seen and name not in self._calls:
                first = name not in self._seen
                self._seen[name] = seen
                if not first:
                    self._log.info("The server %s is now %s", name, describe(status))
                self._call(name, followed.callback)
        return on_its_way

    def _call(self, name: str, callback: StatusChanged) -> None:
        async def call() -> object:
            try:
                return await callback()
            except Exception:
                self._log.exception("Handling the status change of %s failed", name)
                return None

        task = asyncio.get_running_loop().create_task(call())
        self._calls[name] = task
        task.add_done_callback(lambda _: self._calls.pop(name, None))  # only running calls are kept


def describe(status: ServerStatus) -> str:
    """A status in a few words, for the hub's log."""
    if not status.alive:
        return f"gone ({status.reason})"
    return f"running at {status.address}" if status.address else "on its way (restarting or being moved)"
