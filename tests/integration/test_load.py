"""Load: 50 users (the dev LDAP's students) start their servers at once through the hub's REST
API on the single-node swarm. Every one reaches running and answers through the proxy, none
fails; then all stop, and nothing of theirs is left: no service, container or config. (How long
it takes is the benchmark's business: benchmarks/, not a timed assert here.)"""

import time
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from tests.hub import SMALL, HubUser, remove_servers_of, wait_for_no_containers

pytestmark = pytest.mark.swarm
USERS = [f"student{i:02d}" for i in range(1, 51)]


def start_and_answer(user: HubUser) -> str | None:
    """None once the user's server answers through the proxy, else why not."""
    events = []
    try:
        reply = user.api.post(f"{user.hub_url}/hub/api/users/{user.name}/server", json={"user_options": SMALL}, timeout=300)
        if reply.status_code not in (201, 202):
            return f"{user.name}: HTTP {reply.status_code}: {reply.text[:300]}"
        events = user.progress_events()
        user.wait_ready(timeout=300)
    except Exception as e:  # noqa: BLE001 (reported per user, with the last progress message)
        return f"{user.name}: {e!r}; last progress: {events[-1] if events else 'none'}"
    why = user.why_server_does_not_answer()
    if why is None:
        return None
    asked_again = time.monotonic()  # not to pass the test: to tell a slow answer from a lost server
    while (later := user.why_server_does_not_answer()) is not None and time.monotonic() - asked_again < 60:
        time.sleep(1)
    after = f"it answered {time.monotonic() - asked_again:.0f} s later" if later is None else f"and 60 s later: {later}"
    return f"{user.name}: ready, but not answering through the proxy: {why}; {after}"


def test_fifty_users_start_at_once_all_run_then_all_stop_leaving_nothing() -> None:
    client = docker.from_env()
    remove_servers_of(*USERS)
    with ThreadPoolExecutor(len(USERS)) as pool:
        users = list(pool.map(HubUser, USERS))
        try:
            failures = [f for f in pool.map(start_and_answer, users) if f]
            assert not failures, f"{len(failures)} of {len(USERS)} failed:\n" + "\n".join(failures)
            running = {s.name for s in client.services.list(filters={"label": "jovial.managed=true"})}
            assert {f"jupyter-{name}" for name in USERS} <= running
        finally:
            list(pool.map(HubUser.stop, users))
    wait_for_no_containers(client, *USERS, timeout=120)
    for name in USERS:
        assert not client.services.list(filters={"label": f"jovial.user={name}"}), f"{name}'s service is left"
        assert not client.configs.list(filters={"label": f"jovial.object=jupyter-{name}"}), f"{name}'s configs are left"
    assert not [u.model()["servers"] for u in users if u.model()["servers"]], "the hub still lists servers"
