"""A server that dies a moment into its start (here: the user's own Jupyter config ends the process
about a second in) fails the spawn within seconds, through the real hub, with its last output shown
to the user; nothing is left behind, and once the config is fixed the next spawn works."""

import os
import time

import docker
import pytest

from tests.hub import FS_ROOT, HUB_URL, SMALL, HubUser, remove_servers_of, wait_for_no_containers

pytestmark = pytest.mark.swarm
BOB_UID = 10002
FAILS_WITHIN = 30  # seconds: far below the hub's 30 s HTTP timeout + 120 s start timeout; not a benchmark


def test_a_server_dying_at_start_fails_the_spawn_with_its_last_words() -> None:
    client = docker.from_env()
    remove_servers_of("bob")
    user = HubUser("bob")
    user.stop()
    user.start(SMALL)  # makes bob's home, then stop: the broken config goes into a home he owns
    user.stop()
    config_dir = FS_ROOT / "home" / "bob" / ".jupyter"
    config = config_dir / "jupyter_server_config.py"
    try:
        config_dir.mkdir(exist_ok=True)
        config.write_text("import os, sys\nprint('jovial-test: my config ends the server', file=sys.stderr, flush=True)\nos._exit(3)\n")
        for path in (config_dir, config):
            os.chown(path, BOB_UID, BOB_UID)
        started = time.monotonic()
        reply = user.api.post(f"{HUB_URL}/hub/api/users/bob/server", json={"user_options": SMALL}, timeout=60)
        messages = [reply.text] if reply.status_code >= 400 else user.progress()
        elapsed = time.monotonic() - started
        text = "\n".join(messages)
        assert "stopped right after starting (exit code 3)" in text, text
        assert "jovial-test: my config ends the server" in text, text
        assert elapsed < FAILS_WITHIN, f"failed only after {elapsed:.0f} s"
        assert not client.services.list(filters={"label": "jovial.user=bob"})
        wait_for_no_containers(client, "bob")

        config.unlink()
        user.start(SMALL)
        user.wait_ready(timeout=60)
        assert user.server_answers()
    finally:
        config.unlink(missing_ok=True)
        user.stop()
        remove_servers_of("bob")
