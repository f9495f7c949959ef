"""A counting forwarder in front of the Docker socket: every HTTP request a client makes through
it is counted by method and path (API version prefix and query dropped), then passed on as is.

Requests are read one by one from each client connection (head, then a Content-Length body;
docker-py sends no other kind); answers flow back as raw bytes, so streams (events, logs) pass
untouched. Runs its own asyncio
loop in a daemon thread:

    with DockerCounter() as counter:
        client = docker.APIClient(base_url=counter.url, version="auto")
        before = counter.counts()
"""

import asyncio
import re
import tempfile
import threading
from collections import Counter
from pathlib import Path
from types import TracebackType

DOCKER_SOCKET = "/var/run/docker.sock"
VERSION_PREFIX = re.compile(r"^/v\d+\.\d+")


def request_key(head: bytes) -> str:
    """'GET /v1.41/tasks?filters=... HTTP/1.1' -> 'GET /tasks'."""
    method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    return f"{method} {VERSION_PREFIX.sub('', target.split('?', 1)[0])}"


def _header(head: bytes, name: str) -> str | None:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


class DockerCounter:
    """Listens on a unix socket of its own, forwards to the Docker socket, counts requests."""

    def __init__(self, upstream: str = DOCKER_SOCKET) -> None:
        self.upstream = upstream
        self._dir = tempfile.TemporaryDirectory(prefix="jovial-docker-counter-")
        self.path = str(Path(self._dir.name) / "docker.sock")
        self.url = f"unix://{self.path}"
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="docker-counter", daemon=True)

    def counts(self) -> Counter[str]:
        """A copy of the counts so far."""
        with self._lock:
            return Counter(self._counts)

    def drop_connections(self) -> None:
        """Close every open connection, as an engine restart does; new ones are still accepted."""
        asyncio.run_coroutine_threadsafe(self._drop_connections(), self._loop).result(10)

    async def _drop_connections(self) -> None:
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    def __enter__(self) -> "DockerCounter":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the Docker counter did not start")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._dir.cleanup()

    def _serve(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._connections: set[asyncio.Task[None]] = set()

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._connections.add(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await self._forward(reader, writer)
            except asyncio.CancelledError:
                pass  # the counter is stopping or dropping its connections
            finally:
                self._connections.discard(asyncio.current_task())  # type: ignore[arg-type]

        server = await asyncio.start_unix_server(on_client, path=self.path)
        self._ready.set()
        await self._stop.wait()
        server.close()
        await self._drop_connections()

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_unix_connection(self.upstream)
        answers = asyncio.create_task(_pipe(upstream_reader, client_writer))
        try:
            while head := await client_reader.readuntil(b"\r\n\r\n"):
                if _header(head, "transfer-encoding") or (_header(head, "connection") or "").lower() == "upgrade":
                    raise NotImplementedError(f"the Docker counter cannot follow {request_key(head)}: chunked or upgraded")
                with self._lock:
                    self._counts[request_key(head)] += 1
                upstream_writer.write(head + await client_reader.readexactly(int(_header(head, "content-length") or 0)))
                await upstream_writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the client closed the connection
        finally:
            answers.cancel()
            for writer in (client_writer, upstream_writer):
                writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
    writer.close()
