"""Only one hub at a time (spawner/hub_lock.py), with real processes against a real PostgreSQL:
a second hub waits for the first one's connection to end, a hub waits for a database that does not
answer and says so, a hub that merely lost its connection takes the lock again, a hub that finds
the lock taken by another when it comes back stops at once, and a hub that cannot confirm its lock
within its lease (the database frozen) stops too."""

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jovial.hub_lock import EXIT_STATUS_LOCK_TAKEN, EXIT_STATUS_LOCK_UNCONFIRMED, HUB_LOCK_KEY
from tests.database.conftest import Postgres

REPO = Path(__file__).resolve().parents[2]
PATIENCE = 60  # seconds for anything the lock's holder should notice (it checks every second)


class Hub:
    """A process holding (or waiting for) the hub lock; its output read as it comes."""

    def __init__(self, url: str, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen([sys.executable, "-m", "tests.database.hold_hub_lock", url], cwd=REPO,
                                        stdout=log.open("w"), stderr=subprocess.STDOUT)

    def said(self) -> str:
        return self.log.read_text()

    def wait_to_say(self, words: str) -> None:
        deadline = time.monotonic() + PATIENCE
        while words not in self.said():
            assert self.process.poll() is None or words in self.said(), f"it ended saying: {self.said()}"
            assert time.monotonic() < deadline, f"it did not say {words!r} within {PATIENCE} s: {self.said()}"
            time.sleep(0.2)


@contextmanager
def hubs(tmp_path: Path, url: str, count: int) -> Iterator[list[Hub]]:
    started = [Hub(url, tmp_path / f"hub{i}.log") for i in range(count)]
    try:
        yield started
    finally:
        for hub in started:
            if hub.process.poll() is None:
                hub.process.kill()
            hub.process.wait()


def holders(postgres: Postgres) -> int:
    return int(postgres.superuser(
        f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = {HUB_LOCK_KEY & 0xFFFFFFFF}"))


def test_a_second_hub_waits_until_the_first_ones_connection_is_gone(postgres: Postgres, tmp_path: Path) -> None:
    with hubs(tmp_path, postgres.url(), 1) as (first,):
        first.wait_to_say("HELD")
        second = Hub(postgres.url(), tmp_path / "second.log")
        try:
            second.wait_to_say("another hub holds the hub lock of 127.0.0.1")
            assert "its connection from " in second.said()
            time.sleep(2)
            assert "HELD" not in second.said() and holders(postgres) == 1
            first.process.send_signal(signal.SIGKILL)  # a crash: no goodbye to the database
            second.wait_to_say("HELD")
            assert holders(postgres) == 1
        finally:
            second.process.kill()
            second.process.wait()


def test_a_hub_waits_for_a_database_that_does_not_answer_and_says_so(postgres: Postgres, tmp_path: Path) -> None:
    postgres.container.pause()  # its port still accepts connections, which then hang: as a lost node
    try:
        with hubs(tmp_path, postgres.url(), 1) as (hub,):
            hub.wait_to_say(f"waiting for the hub's database at 127.0.0.1:{postgres.port}/jupyterhub: ")
            assert "HELD" not in hub.said()
            postgres.container.unpause()
            hub.wait_to_say("HELD")
    finally:
        postgres.container.reload()
        if postgres.container.status == "paused":
            postgres.container.unpause()


def test_a_hub_that_lost_its_connection_takes_the_lock_again(postgres: Postgres, tmp_path: Path) -> None:
    with hubs(tmp_path, postgres.url(), 1) as (hub,):
        hub.wait_to_say("HELD")
        postgres.superuser("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'jovial-hub-lock'")
        hub.wait_to_say("this hub holds the hub lock of 127.0.0.1")
        assert "the connection that holds the hub lock of 127.0.0.1" in hub.said() and "broke" in hub.said()
        assert hub.process.poll() is None and holders(postgres) == 1


def test_a_hub_that_finds_its_lock_taken_when_it_comes_back_stops(postgres: Postgres, tmp_path: Path) -> None:
    with hubs(tmp_path, postgres.url(), 1) as (hub,):
        hub.wait_to_say("HELD")
        # Another hub takes the lock the moment the first one's connection is gone (in one session
        # of the superuser's: faster than the first one's check, every second).
        other = subprocess.Popen(
            ["docker", "exec", postgres.container.id, "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
             "psql", "-X", "-q", "-d", "jupyterhub",
             "-c", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'jovial-hub-lock'",
             "-c", f"SELECT pg_advisory_lock({HUB_LOCK_KEY})", "-c", "SELECT pg_sleep(30)"],
            stdout=subprocess.DEVNULL)
        try:
            assert hub.process.wait(timeout=PATIENCE) == EXIT_STATUS_LOCK_TAKEN, hub.said()
            assert "another hub took the hub lock of 127.0.0.1" in hub.said()
            assert "this hub stops now" in hub.said()
        finally:
            other.kill()
            other.wait()
            postgres.superuser("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'psql' "
                               "AND pid <> pg_backend_pid()")


def test_a_hub_that_cannot_confirm_its_lock_within_its_lease_stops(postgres: Postgres, tmp_path: Path) -> None:
    with hubs(tmp_path, postgres.url(), 1) as (hub,):
        hub.wait_to_say("HELD")
        postgres.container.pause()  # a frozen database: queries hang, nothing answers, nothing errs
        try:
            assert hub.process.wait(timeout=PATIENCE) == EXIT_STATUS_LOCK_UNCONFIRMED, hub.said()
            assert "could not confirm for 6 s that this hub still holds the hub lock of 127.0.0.1" in hub.said()
        finally:
            postgres.container.unpause()
