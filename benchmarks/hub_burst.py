"""N users start their servers at once through a hub's REST API, as a site's users would.

Each user's time-to-ready runs from the start request to the first answer of their server through
the hub's proxy (its /api/status with the user's token). The hub's CPU and its Docker API calls
are read before and after the burst; then, with all N running, the API calls over an idle window
(the hubs' poll interval); then everyone stops, and the time until nothing of theirs is left on the swarm is taken.
"""

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import docker
import requests

from tests.hub import HubUser

from .contenders import BurstResult, HubContender
from .engine_counters import api_requests, cpu_seconds
from .leftovers import wait_until_gone

ANSWER_TIMEOUT = 30.0  # seconds a ready server may take to answer through the proxy


def timed_start(user: HubUser) -> float | str:
    """Seconds from the start request to the server answering through the proxy, or why it failed."""
    try:
        return start_and_wait(user)
    except requests.RequestException as error:
        return f"{user.name}: the hub's API failed: {error}"


def start_and_wait(user: HubUser) -> float | str:
    started = time.monotonic()
    reply = user.api.post(f"{user.hub_url}/hub/api/users/{user.name}/server", json={}, timeout=300)
    if reply.status_code not in (201, 202):
        return f"{user.name}: start refused, HTTP {reply.status_code}: {reply.text[:200]}"
    events = user.progress_events()
    if not events or not events[-1].get("ready"):
        return f"{user.name}: spawn failed: {events[-1].get('message') if events else 'no progress events'}"
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while not user.server_answers():
        if time.monotonic() > deadline:
            return f"{user.name}: ready, but no answer through the proxy within {ANSWER_TIMEOUT:.0f} s"
        time.sleep(0.05)
    return time.monotonic() - started


def hub_burst(client: docker.DockerClient, hub: HubContender, users: Sequence[HubUser], window: float) -> BurstResult:
    result = BurstResult(contender=hub.name, n=len(users))
    cpu_before = cpu_seconds(client, hub.hub_service)
    calls_before = api_requests(client, hub.docker_proxy_service)
    try:
        with ThreadPoolExecutor(len(users)) as pool:
            outcomes = list(pool.map(timed_start, users))
    except BaseException:
        stop_all(users)
        raise
    result.hub_cpu_seconds = cpu_seconds(client, hub.hub_service) - cpu_before
    calls_after_starts = api_requests(client, hub.docker_proxy_service)
    result.api_calls_during_starts = calls_after_starts - calls_before
    result.ready_seconds = [o for o in outcomes if isinstance(o, float)]
    result.failures = [o for o in outcomes if isinstance(o, str)]
    if window:
        time.sleep(window)
        result.api_calls_in_window = api_requests(client, hub.docker_proxy_service) - calls_after_starts
        result.window_seconds = window
    stopping = time.monotonic()
    stop_all(users)
    result.left_behind = wait_until_gone(client)
    result.stop_seconds = time.monotonic() - stopping
    return result


def stop_all(users: Sequence[HubUser]) -> None:
    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(HubUser.stop, users))
