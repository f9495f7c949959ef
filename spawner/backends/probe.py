"""Does a server answer yet? A TCP connect to its address, for a hub on the servers' own network.

The single-user server opens its port only once it is ready to serve, so a successful connect
means the hub's own HTTP check passes at its first try; a server that dies before it answers
is noticed as it dies, with its last output, instead of after the hub's HTTP timeout.
"""

import asyncio
import socket
from collections.abc import Awaitable, Callable

Probe = Callable[[str, int], Awaitable[bool]]

# Without a probe (the hub is not on the servers' network), a server counts as started once it
# has run this long: one that exits at once is still reported, with its last output.
RUNNING_GRACE = 1.0
FIRST_PROBE_INTERVAL, LAST_PROBE_INTERVAL = 0.05, 1.0


def probe_interval(running_for: float) -> float:
    """Seconds until the next probe of a server that has been running (not answering yet) for
    `running_for` seconds: often at first (a lone server answers a second or two after it runs),
    less often as the wait grows (when a class starts at once, each server takes tens of seconds
    and fifty servers would otherwise be probed ten times a second each: a quarter of the hub's
    CPU). Waiting for the next probe adds at most a tenth of the time already waited, and never
    more than a second."""
    return min(LAST_PROBE_INTERVAL, max(FIRST_PROBE_INTERVAL, running_for / 10))


async def port_answers(ip: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts a TCP connection on ip:port within `timeout` seconds.

    A bare non-blocking connect: no stream reader, writer or transport is made for a connection
    that is closed at once (a hub probing a class of starting servers makes thousands)."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (ip, port)), timeout)
        except (OSError, TimeoutError):
            return False
    return True
