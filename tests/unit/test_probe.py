"""The port probe against real sockets on loopback."""

import asyncio
import socket

from jovial.backends.probe import port_answers


async def test_a_listening_port_answers() -> None:
    server = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await port_answers("127.0.0.1", port)
    finally:
        server.close()
        await server.wait_closed()


async def test_a_closed_port_does_not() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert not await port_answers("127.0.0.1", port)
