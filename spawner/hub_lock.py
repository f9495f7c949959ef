"""One hub at a time: the hub waits for its database, then holds a PostgreSQL advisory lock for its life.

Swarm runs one hub task, but a manager cut off from the others keeps its task running while the
rest of the swarm starts a new one elsewhere. Two hubs would then write the same database and drive
the same users' services. The lock is PostgreSQL's own: a session-level advisory lock, held on a
connection of its own and released by the server when that connection ends, however it ends (the
hub stops or crashes, its node dies: the server's TCP keepalives drop it within about 25 s).

- At start (the hub's configuration calls `HubLock.hold` before JupyterHub opens the database),
  the hub waits for the database, saying so every 30 s, then for the lock, naming the connection
  that holds it.
- Then, every few seconds, it checks the lock's connection. When that connection is lost (the
  database restarted, moved, or was out of reach), it reconnects and takes the lock again. If
  another hub took it meanwhile, this hub exits at once, without a word to the database or the
  swarm: the other one is the hub now, and Swarm restarts this one to wait its turn.
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
    "application_name": "jovial-hub-lock",
}
EXIT_STATUS_LOCK_TAKEN = 3  # the status this hub exits with when another hub took the lock


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

    def __init__(self, url: str, log: logging.Logger, check_every: float = 5.0, wait_note_every: float = 30.0) -> None:
        self.dsn = libpq_url(url)
        self.where = where(url)
        self.log = log
        self.check_every = check_every
        self.wait_note_every = wait_note_every
        self.connection: psycopg.Connection[Any] | None = None

    def hold(self) -> None:
        """Block until this process holds the lock, then keep checking it in a daemon thread."""
        self.connection = self._connect_when_up()
        while self._take(self.connection, wait=True) is None:
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

    def _take(self, connection: psycopg.Connection[Any], wait: bool) -> bool | None:
        """Take the lock on `connection`: True once held; without `wait`, False when another
        session holds it; None when the connection broke."""
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (HUB_LOCK_KEY,))
                if _first(cursor):
                    return True
                if not wait:
                    return False
                self.log.warning(
                    "Jovial: another hub holds the hub lock of %s (%s): waiting until its connection is gone",
                    self.where, self._holder(cursor),
                )
                cursor.execute("SELECT pg_advisory_lock(%s)", (HUB_LOCK_KEY,))
                return True
        except psycopg.Error as error:
            self.log.warning("Jovial: the connection to %s broke while taking the hub lock: %s", self.where, _reason(error))
            return None

    @staticmethod
    def _holder(cursor: psycopg.Cursor[Any]) -> str:
        """Who holds the lock: the holding connection's client address and since when."""
        cursor.execute(
            "SELECT host(a.client_addr), a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s",
            (HUB_LOCK_KEY >> 32, HUB_LOCK_KEY & 0xFFFFFFFF),
        )
        row = cursor.fetchone()
        return f"its connection from {row[0] or 'the local socket'}, since {row[1]:%Y-%m-%d %H:%M:%S %Z}" if row else "it is ending"

    def _watch(self) -> None:
        while True:
            time.sleep(self.check_every)
            assert self.connection is not None
            try:
                with self.connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
                continue
            except psycopg.Error as error:
                self.log.error("Jovial: lost the connection that holds the hub lock of %s (%s): reconnecting",
                               self.where, _reason(error))
            self.connection = self._connect_when_up()
            held = self._take(self.connection, wait=False)
            if held is None:
                continue  # broke again: the next check reconnects
            if held:
                self.log.warning("Jovial: this hub holds the hub lock of %s again", self.where)
                continue
            self.log.critical("Jovial: another hub took the hub lock of %s while this one was cut off from it: "
                              "this hub stops now, so that only one hub drives the swarm", self.where)
            logging.shutdown()
            os._exit(EXIT_STATUS_LOCK_TAKEN)


def _first(cursor: psycopg.Cursor[Any]) -> Any:
    row = cursor.fetchone()
    return row[0] if row else None


def _reason(error: Exception) -> str:
    """The first line of a libpq error (they run over several), or the error's type."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
