"""One hub at a time: the hub waits for its database, then holds a PostgreSQL advisory lock for its life.

Swarm runs one hub task, but a manager cut off from the others keeps its task running while the
rest of the swarm starts a new one elsewhere. Two hubs would then write the same database and drive
the same users' services. The lock is PostgreSQL's own: a session-level advisory lock, held on a
connection of its own and released by the server when that connection ends, however it ends (the
hub stops or crashes, its node dies: the server's TCP keepalives drop it within about 25 s).

- At start (the hub's configuration calls `HubLock.hold` before JupyterHub opens the database),
  the hub waits for the database, saying so every 30 s, then for the lock, naming the connection
  that holds it.
- Then, every 5 s, it checks that the lock's connection answers (within 5 s). When it does not
  (the database restarted, moved, froze or is out of reach), the hub takes the lock again on a new
  connection, first ending its own old session if the server still has it. If another hub holds
  the lock, this hub exits at once, without a word to the database or the swarm: the other one is
  the hub now. If it cannot confirm the lock within 20 s of the last good check (its lease), it
  exits too. The server lets a lost hub's session go only after about 25 s of silence (its TCP
  keepalives), so a hub cut off from the database has stopped before another can take the lock.
  Swarm restarts a hub that exited, and it waits for the database and the lock again.
"""

import logging
import os
import threading
import time
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

# The advisory lock's key, one for every hub of a database: "Jovial" in ASCII.
HUB_LOCK_KEY = 0x4A6F7669616C
# Ours (the hub's end): a database that is gone is noticed within about 25 s, not the kernel's 2 hours.
CONNECTION_OPTIONS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 25000,  # ms: also when a query was sent and is not acknowledged (a partition)
    "application_name": "jovial-hub-lock",
}
EXIT_STATUS_LOCK_TAKEN = 3  # the status this hub exits with when another hub took the lock
EXIT_STATUS_LOCK_UNCONFIRMED = 4  # ... and when it could not confirm that it holds it, for `lease` seconds


def libpq_url(sqlalchemy_url: str) -> str:
    """The libpq form (postgresql://user:password@host:port/db) of a SQLAlchemy PostgreSQL URL,
    which may name a driver (postgresql+psycopg://)."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def where(sqlalchemy_url: str) -> str:
    """host:port/database of the URL, without the user or password: for log lines."""
    url = make_url(sqlalchemy_url)
    return f"{url.host}:{url.port or 5432}/{url.database}"


class HubLock:
    """The hub lock of the database at `url` (a SQLAlchemy URL, password included)."""

    def __init__(
        self, url: str, log: logging.Logger, check_every: float = 5.0, check_timeout: float = 5.0, lease: float = 20.0,
        wait_note_every: float = 30.0,
    ) -> None:
        self.dsn = libpq_url(url)
        self.where = where(url)
        self.log = log
        self.check_every = check_every  # seconds between checks that the lock's connection answers
        self.check_timeout = check_timeout  # a check not answered in this long failed
        self.lease = lease  # the hub stops when it could not confirm the lock for this long
        self.wait_note_every = wait_note_every
        self.connection: psycopg.Connection[Any] | None = None

    def hold(self) -> None:
        """Block until this process holds the lock, then keep checking it in a daemon thread."""
        self.connection = self._connect_when_up()
        while self._take(self.connection) is None:
            self.connection = self._connect_when_up()
        self.log.info("Jovial: this hub holds the hub lock of the database %s", self.where)
        threading.Thread(target=self._watch, name="jovial-hub-lock", daemon=True).start()

    def _connect_when_up(self) -> psycopg.Connection[Any]:
        """A new autocommit connection, once the database answers (a line every wait_note_every s until then)."""
        noted = float("-inf")
        while True:
            try:
                return psycopg.connect(self.dsn, autocommit=True, **CONNECTION_OPTIONS)
            except psycopg.OperationalError as error:
                if time.monotonic() - noted >= self.wait_note_every:
                    self.log.warning("Jovial: waiting for the hub's database at %s: %s", self.where, _reason(error))
                    noted = time.monotonic()
                time.sleep(1)

    def _take(self, connection: psycopg.Connection[Any]) -> bool | None:
        """Take the lock on `connection`, waiting while another session holds it: True once held;
        None when the connection broke."""
        try:
            with connection.cursor() as cursor:
                if _try_lock(cursor):
                    return True
                self.log.warning(
                    "Jovial: another hub holds the hub lock of %s (%s): waiting until its connection is gone",
                    self.where, _holder(cursor),
                )
                cursor.execute("SELECT pg_advisory_lock(%s)", (HUB_LOCK_KEY,))
                return True
        except psycopg.Error as error:
            self.log.warning("Jovial: the connection to %s broke while taking the hub lock: %s", self.where, _reason(error))
            return None

    def _answers(self, connection: psycopg.Connection[Any]) -> bool:
        """Whether `connection` answers a query within check_timeout. A server that is frozen or out
        of reach may leave the query hanging for minutes: it is then abandoned to a daemon thread."""
        answered = threading.Event()

        def check() -> None:
            try:
                connection.execute("SELECT 1")
                answered.set()
            except psycopg.Error as error:
                self.log.error("Jovial: the connection that holds the hub lock of %s broke: %s", self.where, _reason(error))

        threading.Thread(target=check, name="jovial-hub-lock-check", daemon=True).start()
        return answered.wait(self.check_timeout)

    def _watch(self) -> None:
        confirmed = time.monotonic()
        while True:
            time.sleep(self.check_every)
            assert self.connection is not None
            if self._answers(self.connection):
                confirmed = time.monotonic()
                continue
            self.log.error("Jovial: the hub lock of %s is not confirmed: taking it again on a new connection", self.where)
            outcome = self._take_again(until=confirmed + self.lease)
            if outcome == "held":
                self.log.warning("Jovial: this hub holds the hub lock of %s again", self.where)
                confirmed = time.monotonic()
                continue
            if outcome == "taken":
                self.log.critical("Jovial: another hub took the hub lock of %s while this one was cut off from it: "
                                  "this hub stops now, so that only one hub drives the swarm", self.where)
                status = EXIT_STATUS_LOCK_TAKEN
            else:
                self.log.critical("Jovial: could not confirm for %.0f s that this hub still holds the hub lock of %s (the "
                                  "database is out of reach): this hub stops now, so that no other hub can find it still "
                                  "at work; Swarm starts it again, and it waits for the database", self.lease, self.where)
                status = EXIT_STATUS_LOCK_UNCONFIRMED
            logging.shutdown()
            os._exit(status)

    def _take_again(self, until: float) -> str:
        """"held", "taken" (another session holds the lock) or "unconfirmed" (no answer before `until`).
        The old connection's own session, if the server still has it, is ended first: it is ours."""
        assert self.connection is not None
        try:
            old_session = self.connection.info.backend_pid
        except psycopg.Error:
            old_session = 0  # no such server process: nothing to end
        while time.monotonic() < until:
            try:
                connection = psycopg.connect(self.dsn, autocommit=True, **CONNECTION_OPTIONS)
            except psycopg.OperationalError:
                time.sleep(1)
                continue
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_terminate_backend(%s) WHERE %s <> pg_backend_pid()", (old_session, old_session))
                    while not _try_lock(cursor):
                        if _holder_session(cursor) not in (old_session, None):
                            connection.close()
                            return "taken"
                        if time.monotonic() >= until:
                            connection.close()
                            return "unconfirmed"
                        time.sleep(0.2)  # our old session is ending
                self.connection = connection
                return "held"
            except psycopg.Error:
                connection.close()
                time.sleep(1)
        return "unconfirmed"


def _try_lock(cursor: psycopg.Cursor[Any]) -> bool:
    cursor.execute("SELECT pg_try_advisory_lock(%s)", (HUB_LOCK_KEY,))
    return bool(_first(cursor))


_HOLDER = (
    "SELECT a.pid, host(a.client_addr), a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def _holder_session(cursor: psycopg.Cursor[Any]) -> int | None:
    """The server process id of the session that holds the lock; None: nobody (any more)."""
    cursor.execute(_HOLDER, (HUB_LOCK_KEY >> 32, HUB_LOCK_KEY & 0xFFFFFFFF))
    row = cursor.fetchone()
    return int(row[0]) if row else None


def _holder(cursor: psycopg.Cursor[Any]) -> str:
    """Who holds the lock, for a log line: the holding connection's client address and since when."""
    cursor.execute(_HOLDER, (HUB_LOCK_KEY >> 32, HUB_LOCK_KEY & 0xFFFFFFFF))
    row = cursor.fetchone()
    return f"its connection from {row[1] or 'the local socket'}, since {row[2]:%Y-%m-%d %H:%M:%S %Z}" if row else "it is ending"


def _first(cursor: psycopg.Cursor[Any]) -> Any:
    row = cursor.fetchone()
    return row[0] if row else None


def _reason(error: Exception) -> str:
    """The first line of a libpq error (they run over several), or the error's type."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
