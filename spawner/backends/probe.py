"""Does a server answer yet? A TCP connect to its address, for a hub on the servers' own network.

The single-user server opens its port only once it is ready to serve, so a successful connect
means the hub's own HTTP check passes at its first try; a server that dies before it answers
is noticed as it dies, with its last output, instead of after the hub's HTTP timeout.
"""

import asyncio
from collections.abc import Awaitable, Callable

Probe = Callable[[str, int], Awaitable[bool]]

# Without a probe (the hub is not on the servers' network), a server counts as started once it
# has run this long: one that exits at once is still reported, with its last output.
RUNNING_GRACE = 1.0
FIRST_PROBE_INTERVAL, LAST_PROBE_INTERVAL = 0.05, 0.5


def probe_interval(running_for: float) -> float:
    """Seconds until the next probe of a server that has been running (not answering yet) for
    `running_for` seconds: often at first (a lone server answers a second or two after it runs),
    less often as the wait grows (when a class starts at once, each server takes tens of seconds
    and hundreds of servers would otherwise be probed ten times a second). Waiting for the next
    probe adds at most an eighth of the time already waited, and never more than half a second."""
    return min(LAST_PROBE_INTERVAL, max(FIRST_PROBE_INTERVAL, running_for / 8))


async def port_answers(ip: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts a TCP connection on ip:port within `timeout` seconds."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True
