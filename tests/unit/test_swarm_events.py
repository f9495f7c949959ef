"""The watcher's events thread outlives what the engine sends: a line that is not JSON, an event
with parts of the wrong type, a stream that ends. Each bad event is logged and skipped, and the
next good event still makes the watcher relist; an ended stream is opened again.

The watcher reads the events through the real Docker SDK (docker.APIClient) from a small HTTP
server on 127.0.0.1 that streams /events the way the engine does (chunked, one JSON object per
line) and answers the lists with nothing: NOT an engine, no Docker here."""

import asyncio
import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import docker
import pytest

from jovial.backends.swarm.watcher import SwarmWatcher

API = "1.41"
SERVICE_EVENT = {"Type": "service", "Action": "update", "Actor": {"ID": "s1", "Attributes": {"name": "jupyter-alice"}}}
END = None  # pushed to end the current events stream


@dataclass
class FakeEngine:
    """The HTTP side: `push` a line (bytes) onto the open events stream, `calls` counts requests."""

    server: ThreadingHTTPServer
    lines: "queue.Queue[bytes | None]" = field(default_factory=queue.Queue)
    calls: Counter[str] = field(default_factory=Counter)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.server.server_address[1]}"

    def push(self, line: bytes | None) -> None:
        self.lines.put(line)


def handler_for(engine_of: Callable[[], FakeEngine]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            engine = engine_of()
            path = self.path.split("?")[0].removeprefix(f"/v{API}")
            engine.calls[path] += 1
            if path == "/events":
                self._stream_events(engine)
                return
            body = b"[]"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream_events(self, engine: FakeEngine) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            while not engine.stopping.is_set():
                try:
                    line = engine.lines.get(timeout=0.1)
                except queue.Empty:
                    continue
                if line is END:
                    break
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    self.wfile.flush()
                except OSError:  # the watcher closed the stream
                    return
            try:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                pass
            self.close_connection = True

    return Handler


@pytest.fixture
def engine() -> Iterator[FakeEngine]:
    made: list[FakeEngine] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(lambda: made[0]))
    server.daemon_threads = True
    made.append(FakeEngine(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield made[0]
    made[0].stopping.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
async def watcher(engine: FakeEngine) -> AsyncIterator[SwarmWatcher]:
    client = docker.APIClient(base_url=engine.url, version=API)
    made = SwarmWatcher(client, logging.getLogger("jovial.tests.events"), relist_interval=3600)  # only events relist
    yield made
    await made.close()
    client.close()


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)


async def relisted_on(engine: FakeEngine, line: bytes) -> None:
    """Push `line`; the watcher must relist because of it."""
    await asyncio.sleep(0.6)  # past the watcher's MIN_GAP: a relist asked for now starts at once
    before = engine.calls["/services"]
    engine.push(line)
    await until(lambda: engine.calls["/services"] > before, f"a relist after {line!r}")


async def following(engine: FakeEngine, watcher: SwarmWatcher) -> None:
    """Start the watcher; return once its events stream is open and an event makes it relist."""
    await watcher.newer_than(0, 5)
    await until(lambda: engine.calls["/events"] == 1, "the events stream opened")
    await relisted_on(engine, GOOD)


GOOD = json.dumps(SERVICE_EVENT).encode() + b"\n"


async def test_a_line_that_is_not_json_is_logged_and_skipped_and_the_next_event_still_counts(
    engine: FakeEngine, watcher: SwarmWatcher, caplog: pytest.LogCaptureFixture
) -> None:
    await following(engine, watcher)
    engine.push(b"this is not JSON\n")  # e.g. a proxy's error page in the middle of the stream
    await relisted_on(engine, GOOD)
    assert "Skipping a Docker event that cannot be read (Expecting value: line 1 column 1 (char 0)): 'this is not JSON\\n'" in caplog.text


async def test_events_with_parts_of_the_wrong_type_do_not_stop_the_thread_nor_does_the_end_of_the_stream(
    engine: FakeEngine, watcher: SwarmWatcher, caplog: pytest.LogCaptureFixture
) -> None:
    await following(engine, watcher)
    engine.push(b'{"Type": "container", "Action": "start", "Actor": null}\n')  # valid JSON, an Actor that is not an object
    engine.push(b'{"Type": "container", "Action": "die", "Actor": {"Attributes": ["jovial.managed"]}}\n')
    engine.push(b'["not", "an", "object"]\n')
    await relisted_on(engine, GOOD)
    assert "a JSON list, not an object" in caplog.text
    assert watcher._events_thread is not None and watcher._events_thread.is_alive()

    engine.push(END)  # the engine ends the stream (a restart): it is opened again
    await until(lambda: engine.calls["/events"] == 2, "the events stream opened again")
    assert "The Docker events stream ended; reconnecting" in caplog.text
    await relisted_on(engine, GOOD)
