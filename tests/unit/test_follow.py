"""Followers: a callback per followed server when its status changes, and a hurried watcher while
one is on its way back. The watcher is played by a list of states the test moves through."""

import asyncio
import logging
from contextlib import contextmanager
from collections.abc import Iterator

from jovial.backends import ServerStatus
from jovial.backends.follow import Followers

RUNNING_AT_A = ServerStatus(alive=True, address="10.0.0.5")
ON_ITS_WAY = ServerStatus(alive=True)
RUNNING_AT_B = ServerStatus(alive=True, address="10.0.0.9")
GONE = ServerStatus(alive=False, reason="Your server was killed.")


class FakeWatcher:
    """States by version; the test calls `advance` to make the next one current."""

    def __init__(self, states: list[dict[str, ServerStatus]]) -> None:
        self.states = states
        self.version = 0
        self.changed = asyncio.Event()
        self.hurrying = 0
        self.hurried_at: list[int] = []

    async def next_change(self, after: int) -> int:
        while self.version <= after:
            await self.changed.wait()
        return self.version

    async def status(self, name: str) -> ServerStatus:
        return self.states[self.version - 1].get(name, GONE)

    def advance(self) -> None:
        self.version += 1
        self.changed.set()
        self.changed = asyncio.Event()

    @contextmanager
    def hurry(self) -> Iterator[None]:
        self.hurrying += 1
        self.hurried_at.append(self.version)
        try:
            yield
        finally:
            self.hurrying -= 1


async def settle() -> None:
    await asyncio.sleep(0.3)  # longer than the followers' MIN_GAP


async def test_callbacks_come_on_the_first_look_and_on_every_change_only() -> None:
    watcher = FakeWatcher([
        {"alice": RUNNING_AT_A, "bob": RUNNING_AT_A},
        {"alice": RUNNING_AT_A, "bob": RUNNING_AT_A},  # nothing changed
        {"alice": ON_ITS_WAY, "bob": RUNNING_AT_A},
        {"alice": RUNNING_AT_B, "bob": RUNNING_AT_A},
        {"alice": GONE, "bob": RUNNING_AT_A},
    ])
    calls: list[tuple[str, int]] = []
    followers = Followers(watcher.next_change, watcher.status, logging.getLogger("test"), watcher.hurry)

    def recorder(name: str):
        async def record() -> None:
            calls.append((name, watcher.version))
        return record

    followers.follow("alice", recorder("alice"))
    followers.follow("bob", recorder("bob"))
    try:
        for _ in watcher.states:
            watcher.advance()
            await settle()
        assert calls == [("alice", 1), ("bob", 1), ("alice", 3), ("alice", 4), ("alice", 5)]
        assert watcher.hurried_at == [3] and watcher.hurrying == 0  # hurried while alice had no address
    finally:
        await followers.close()


async def test_an_unfollowed_server_is_not_called_back_and_a_failing_callback_does_not_stop_the_others() -> None:
    watcher = FakeWatcher([{"alice": RUNNING_AT_A, "bob": RUNNING_AT_A}, {"alice": RUNNING_AT_B, "bob": RUNNING_AT_B}])
    calls: list[str] = []
    followers = Followers(watcher.next_change, watcher.status, logging.getLogger("test"), watcher.hurry)

    async def broken() -> None:
        raise RuntimeError("the proxy is down")

    async def bob() -> None:
        calls.append("bob")

    followers.follow("alice", broken)
    followers.follow("bob", bob)
    try:
        watcher.advance()
        await settle()
        followers.unfollow("bob")
        watcher.advance()
        await settle()
        assert calls == ["bob"]
    finally:
        await followers.close()
