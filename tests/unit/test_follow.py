"""Followers: a callback per followed server when its status changes, and a hurried watcher while
one is on its way back. The watcher is played by a list of states the test moves through."""

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from jovial.backends import ServerStatus
from jovial.backends.follow import Followers
from jovial.spec import ServerOwner

RUNNING_AT_A = ServerStatus(alive=True, address="10.0.0.5")
ON_ITS_WAY = ServerStatus(alive=True)
RUNNING_AT_B = ServerStatus(alive=True, address="10.0.0.9")
GONE = ServerStatus(alive=False, reason="Your server was killed.")


def owner(name: str) -> ServerOwner:
    return ServerOwner(name, "")


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

    async def status(self, name: str, owner: ServerOwner) -> ServerStatus:
        assert owner.username == name  # each server is asked about with its owner
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

    followers.follow("alice", owner("alice"), recorder("alice"))
    followers.follow("bob", owner("bob"), recorder("bob"))
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

    followers.follow("alice", owner("alice"), broken)
    followers.follow("bob", owner("bob"), bob)
    try:
        watcher.advance()
        await settle()
        followers.unfollow("bob")
        watcher.advance()
        await settle()
        assert calls == ["bob"]
    finally:
        await followers.close()


async def test_a_change_during_a_running_call_comes_after_it_and_unfollow_lets_a_call_finish() -> None:
    watcher = FakeWatcher([{"alice": RUNNING_AT_A}, {"alice": RUNNING_AT_B}, {"alice": RUNNING_AT_B}, {"alice": GONE}])
    started: list[int] = []
    release = asyncio.Event()
    followers = Followers(watcher.next_change, watcher.status, logging.getLogger("test"), watcher.hurry)

    async def slow_poll() -> None:
        started.append(watcher.version)
        await release.wait()

    followers.follow("alice", owner("alice"), slow_poll)
    try:
        watcher.advance()
        await settle()
        watcher.advance()  # alice moves while the first call still runs: no second call at once
        await settle()
        assert started == [1]
        release.set()
        await settle()
        watcher.advance()  # the next look sees the move the running call may have missed
        await settle()
        assert started == [1, 3]
        release.clear()
        watcher.advance()
        await settle()
        assert started == [1, 3, 4]
        call = followers._calls["alice"]
        followers.unfollow("alice")  # as the spawner's poll does from inside the call
        release.set()
        await settle()
        assert call.done() and not call.cancelled()
    finally:
        await followers.close()


async def test_following_goes_on_after_the_watcher_fails_once() -> None:
    watcher = FakeWatcher([{"alice": RUNNING_AT_A}, {"alice": GONE}])
    calls: list[int] = []
    failures = [RuntimeError("the engine's stream broke")]

    async def next_change(after: int) -> int:
        if failures:
            raise failures.pop()
        return await watcher.next_change(after)

    async def record() -> None:
        calls.append(watcher.version)

    followers = Followers(next_change, watcher.status, logging.getLogger("test"), watcher.hurry)
    followers.follow("alice", owner("alice"), record)
    try:
        for _ in watcher.states:
            watcher.advance()
            await settle()
        assert calls == [1, 2]
    finally:
        await followers.close()


async def test_the_watcher_is_hurried_for_a_while_per_server_on_its_way_back() -> None:
    watcher = FakeWatcher([
        {"alice": ON_ITS_WAY, "bob": RUNNING_AT_A},  # 1: alice on her way: hurry
        {"alice": ON_ITS_WAY, "bob": RUNNING_AT_A},  # 2: past the limit: no more hurry
        {"alice": ON_ITS_WAY, "bob": ON_ITS_WAY},  # 3: bob on his way: hurry again, for him
        {"alice": ON_ITS_WAY, "bob": ON_ITS_WAY},  # 4: past his limit too
        {"alice": RUNNING_AT_B, "bob": ON_ITS_WAY},  # 5: alice arrived; bob still waiting
        {"alice": ON_ITS_WAY, "bob": ON_ITS_WAY},  # 6: alice on her way again: a new while
    ])
    hurrying_at: list[int] = []
    followers = Followers(watcher.next_change, watcher.status, logging.getLogger("test"), watcher.hurry, hurry_limit=0.5)

    async def nothing() -> None:
        pass

    followers.follow("alice", owner("alice"), nothing)
    followers.follow("bob", owner("bob"), nothing)
    try:
        for _ in watcher.states:
            watcher.advance()
            await settle()
            await asyncio.sleep(0.3)  # with settle(), longer than the limit: the next look is past it
            hurrying_at.append(watcher.hurrying)
        assert hurrying_at == [1, 0, 1, 0, 0, 1]
        assert watcher.hurried_at == [1, 3, 6]
    finally:
        await followers.close()
