"""The proxy keeps an idle keep-alive connection open for a minute, not Node's 5 seconds.

With Node's default, a client that sends its next request on a kept connection just as the proxy
closes it gets "connection reset" or "closed without response": one request in seven, when 40
clients each sent a request every 5 s (and a spawn of the benchmark's 50-user burst died of it).
The test holds a connection idle past Node's 5 s and uses it again."""

import http.client
import select
import time
from urllib.parse import urlsplit

import pytest

from tests.hub import HUB_URL

pytestmark = pytest.mark.swarm
NODE_DEFAULT_KEEP_ALIVE = 5.0  # seconds Node's HTTP server keeps an idle connection by default
IDLE = NODE_DEFAULT_KEEP_ALIVE + 3


def closed_by_the_server(connection: http.client.HTTPConnection) -> bool:
    """Whether the server has closed the connection's socket (it reads as end of file)."""
    readable, _, _ = select.select([connection.sock], [], [], 0)
    return bool(readable) and connection.sock.recv(1, 2) == b""  # 2: MSG_PEEK


def test_an_idle_connection_is_kept_past_nodes_default_and_serves_the_next_request() -> None:
    address = urlsplit(HUB_URL)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request("GET", "/hub/api")
        first = connection.getresponse()
        first.read()
        assert first.status == 200, first.status
        assert not first.will_close, "the proxy asked to close the connection after one request"
        time.sleep(IDLE)
        assert not closed_by_the_server(connection), f"the proxy closed the connection after less than {IDLE:.0f} s idle"
        connection.request("GET", "/hub/api")
        second = connection.getresponse()
        second.read()
        assert second.status == 200, second.status
    finally:
        connection.close()
