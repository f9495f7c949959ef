"""The port probe against real sockets on loopback."""

import asyncio
import socket

from jovial.backends.probe import port_answers, probe_interval


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


def test_probes_come_often_at_first_and_seldom_after_a_long_wait() -> None:
    assert probe_interval(0.0) == 0.05
    assert probe_interval(1.5) == 0.15  # a lone server: its answer is seen within a tenth of the wait
    assert probe_interval(60.0) == 1.0  # one of a class starting at once: once a second, not 20 times
    assert all(probe_interval(t) <= max(0.05, t / 10) for t in (0.1, 0.5, 2.0, 9.9, 100.0))

