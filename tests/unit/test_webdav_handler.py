"""The astro image's WebDAV endpoint (images/astro/jovial_webdav), in this process: its real handler
in a Tornado application on 127.0.0.1 with the Jupyter server's token login, in front of its real
WsgiDAV backend serving a temporary home.

- A download streams with backpressure: while the client reads slowly, the server holds no more
  than a few chunks of the file in memory (Python's own allocations, traced), not the file.
- Responses carry a sandboxing Content-Security-Policy, so an HTML or SVG file opened from the
  endpoint runs no script with the server's origin (and so with the user's access to it).
"""

import asyncio
import hashlib
import sys
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "images" / "astro"))  # the package as the image installs it

from jupyter_server.auth import AllowAllAuthorizer, IdentityProvider  # noqa: E402
from tornado import httpclient, httpserver, testing, web  # noqa: E402

from jovial_webdav import WebDAVHandler, backend  # noqa: E402

TOKEN = "webdav-test-token"
BASE_URL = "/user/alice/"
MiB = 1 << 20
FILE_SIZE = 64 * MiB
# The most the server may hold while the reader waits: a few of Tornado's 64 KiB chunks, with room
# to spare; buffering the file would be 8 times as much.
MEMORY_BOUND = 8 * MiB
# The reader stops reading for this long, after its first MiB: longer than cheroot's default socket
# timeout (10 s), which once made the backend cut off a download whose reader paused.
STALL_SECONDS = 12.0


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The home the backend serves (it starts once per process, at the first request, from $HOME)."""
    path = tmp_path_factory.mktemp("home")
    (path / "cube.fits").write_bytes(bytes(range(256)) * (FILE_SIZE // 256))
    (path / "page.html").write_text("<script>fetch('/user/alice/api/contents')</script>")
    (path / "image.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(path))
        yield path
    backend.stop()  # its worker threads would keep pytest from exiting


@pytest.fixture
async def port(home: Path) -> AsyncIterator[int]:
    """A port on 127.0.0.1 where the handler answers at /user/alice/webdav/, as in a user's server."""
    app = web.Application(
        [(BASE_URL + "webdav(?:/.*)?", WebDAVHandler)],
        base_url=BASE_URL,
        identity_provider=IdentityProvider(token=TOKEN),
        authorizer=AllowAllAuthorizer(),
        cookie_secret=b"webdav-test-cookie-secret",
    )
    server = httpserver.HTTPServer(app)
    listening, number = testing.bind_unused_port()
    server.add_sockets([listening])
    yield number
    server.stop()
    await server.close_all_connections()


async def slow_download(port: int, path: str) -> tuple[int, str]:
    """GET `path` with a raw socket, reading a MiB, then nothing for STALL_SECONDS, then the rest;
    return the body's size and SHA-256."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {BASE_URL}webdav/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: token {TOKEN}\r\n"
                 "Connection: close\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    digest, size, stalled = hashlib.sha256(), 0, False
    while block := await reader.read(64 * 1024):
        digest.update(block)
        size += len(block)
        if size >= MiB and not stalled:
            stalled = True
            await asyncio.sleep(STALL_SECONDS)
    writer.close()
    return size, digest.hexdigest()


async def test_a_download_to_a_slow_reader_is_not_buffered_in_the_servers_memory(home: Path, port: int) -> None:
    expected = hashlib.sha256((home / "cube.fits").read_bytes()).hexdigest()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        size, digest = await slow_download(port, "cube.fits")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (size, digest) == (FILE_SIZE, expected)
    assert peak - baseline < MEMORY_BOUND, f"the server held {(peak - baseline) / MiB:.0f} MiB for a slow reader"


@pytest.mark.parametrize("name", ["page.html", "image.svg", ""])
async def test_responses_are_sandboxed_so_files_run_no_script_with_the_servers_origin(port: int, name: str) -> None:
    """A file (GET) and the home's listing (PROPFIND)."""
    client = httpclient.AsyncHTTPClient(force_instance=True)
    try:
        reply = await client.fetch(
            f"http://127.0.0.1:{port}{BASE_URL}webdav/{name}",
            method="GET" if name else "PROPFIND",
            headers={"Authorization": f"token {TOKEN}", **({} if name else {"Depth": "1"})},
            allow_nonstandard_methods=True,
            raise_error=False,
        )
    finally:
        client.close()
    assert reply.code == (200 if name else 207), reply.body[:300]
    directives = [d.strip() for d in reply.headers["Content-Security-Policy"].split(";")]
    assert directives[:2] == ["sandbox", "default-src 'none'"], directives
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
