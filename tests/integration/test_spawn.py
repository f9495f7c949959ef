"""A real spawn through the real hub on the real single-node swarm, checked as Docker and the host see it.

Needs the stack deployed by swarm/up (tests/run does it). Uses the demo user alice.
"""

import os
import stat
from collections.abc import Iterator

import docker
import pytest
import requests

from tests.hub import FS_ROOT, HUB_URL, SMALL, HubUser, remove_servers_of, wait_for_no_containers

pytestmark = pytest.mark.swarm


@pytest.fixture(scope="module")
def docker_client() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture(scope="module")
def alice(docker_client: docker.DockerClient) -> Iterator[HubUser]:
    remove_servers_of("alice")
    user = HubUser("alice")
    user.stop()
    user.progress = user.start(SMALL)
    user.wait_ready()
    yield user
    user.stop()
    remove_servers_of("alice")


def test_progress_shows_the_real_steps(alice: HubUser) -> None:
    text = "\n".join(alice.progress)
    assert "Found your account: alice, uid 10001, gid 10001" in text
    assert "your home directory" in text
    assert "on node" in text


def test_service_runs_as_alice_with_her_groups(alice: HubUser, docker_client: docker.DockerClient) -> None:
    spec = docker_client.services.get("jupyter-alice").attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert spec["User"] == "10001:10001"
    assert sorted(spec["Groups"]) == ["20001", "20002"]
    assert spec["CapabilityDrop"] == ["ALL"]
    container = docker_client.containers.list(filters={"label": "jovial.user=alice"})[0]
    assert container.exec_run("id").output.decode().strip() == (
        "uid=10001(alice) gid=10001(alice) groups=10001(alice),20001(astro),20002(gaia)"
    )
    assert container.exec_run("sh -c 'echo $HOME; pwd'").output.decode().split() == ["/home/alice", "/home/alice"]


def test_home_is_bind_mounted_from_the_shared_filesystem(alice: HubUser, docker_client: docker.DockerClient) -> None:
    spec = docker_client.services.get("jupyter-alice").attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    # First her home; then the dev site's project and data mounts (test_data_and_projects.py).
    assert spec["Mounts"][0] == {"Type": "bind", "Source": f"{FS_ROOT}/home/alice", "Target": "/home/alice"}
    info = os.stat(FS_ROOT / "home" / "alice")
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (10001, 10001, 0o700)


def test_placement_and_limits_as_docker_reports_them(alice: HubUser, docker_client: docker.DockerClient) -> None:
    task_template = docker_client.services.get("jupyter-alice").attrs["Spec"]["TaskTemplate"]
    assert task_template["Placement"]["Constraints"] == ["node.labels.jovial.fs==lustre"]
    assert task_template["Resources"]["Limits"] == {"NanoCPUs": 1_000_000_000, "MemoryBytes": 2 * 1024**3}
    container = docker_client.containers.list(filters={"label": "jovial.user=alice"})[0]
    host_config = container.attrs["HostConfig"]
    assert host_config["NanoCpus"] == 1_000_000_000 and host_config["Memory"] == 2 * 1024**3
    assert host_config["CapDrop"] == ["ALL"] and host_config["Init"] is True
    assert "/var/run/docker.sock" not in {m["Source"] for m in container.attrs["Mounts"]}


def test_a_notebook_saved_through_the_proxy_lands_on_the_host_owned_by_alice(alice: HubUser) -> None:
    notebook = {"type": "notebook", "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}
    reply = alice.api.put(f"{HUB_URL}/user/alice/api/contents/hello.ipynb", json=notebook, timeout=30)
    assert reply.status_code in (200, 201), reply.text
    saved = FS_ROOT / "home" / "alice" / "hello.ipynb"
    assert saved.stat().st_uid == 10001 and saved.stat().st_gid == 10001
    assert '"nbformat": 4' in saved.read_text()


def test_the_server_refuses_requests_without_alices_token(alice: HubUser) -> None:
    from urllib.parse import urlsplit

    import requests

    url = f"{HUB_URL}/user/alice/api/contents"
    # Control: with her token the same request reaches her running server and lists her home, so the
    # refusals below are her server's (the hub, finding no server, would redirect to /hub/user/alice/).
    own = alice.api.get(url, allow_redirects=False, timeout=30)
    assert own.status_code == 200 and own.json()["type"] == "directory", (own.status_code, own.text)

    # No credentials: refused, or sent to log in at the hub (its login page or OAuth authorization).
    anonymous = requests.get(url, allow_redirects=False, timeout=30)
    if anonymous.status_code != 403:
        assert anonymous.status_code in (302, 303), (anonymous.status_code, anonymous.text)
        location = urlsplit(anonymous.headers["Location"])
        assert location.path in ("/hub/login", "/hub/api/oauth2/authorize"), anonymous.headers["Location"]

    # Another user's valid token: refused, and none of her data in the answer.
    bob = HubUser("bob")
    other = bob.api.get(url, allow_redirects=False, timeout=30)
    assert other.status_code in (403, 404), (other.status_code, other.text)
    assert not any(item["name"] in other.text for item in own.json()["content"]), other.text


def test_stopping_removes_the_service_its_configs_and_container(docker_client: docker.DockerClient) -> None:
    user = HubUser("alice")
    if not user.model()["servers"].get(""):
        user.start(SMALL)
        user.wait_ready()
    user.stop()
    assert not docker_client.services.list(filters={"label": "jovial.user=alice"})
    assert not [c for c in docker_client.configs.list(filters={"label": "jovial.object=jupyter-alice"})]
    wait_for_no_containers(docker_client, "alice")


def test_a_stopped_servers_api_token_no_longer_works() -> None:
    """The token the hub gave her server (in its environment) opens the hub's API while it runs,
    and is revoked when it stops: nothing resumes a removed service."""
    user = HubUser("alice")
    if not user.model()["servers"].get(""):
        user.start(SMALL)
        user.wait_ready()
    status, token = user.run_in_terminal("printenv JUPYTERHUB_API_TOKEN")
    token = token.strip()
    assert status == 0 and token, token

    def hub_accepts(token: str) -> int:
        return requests.get(f"{HUB_URL}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30).status_code

    assert hub_accepts(token) == 200
    user.stop()
    assert hub_accepts(token) in (401, 403), "the stopped server's API token still opens the hub's API"


def test_limits_follow_the_chosen_profile_and_bad_options_are_refused(docker_client: docker.DockerClient) -> None:
    user = HubUser("carol")
    try:
        user.stop()
        refused = user.api.post(f"{HUB_URL}/hub/api/users/carol/server", json={"profile": "huge"}, timeout=60)
        assert refused.status_code == 400 and "Unknown profile 'huge'" in refused.text, refused.text
        assert not docker_client.services.list(filters={"label": "jovial.user=carol"})
        user.start({"profile": "large"})
        user.wait_ready()
        limits = docker_client.services.get("jupyter-carol").attrs["Spec"]["TaskTemplate"]["Resources"]["Limits"]
        assert limits == {"NanoCPUs": 2_000_000_000, "MemoryBytes": 4 * 1024**3}
    finally:
        user.stop()
        remove_servers_of("carol")


def test_a_start_naming_no_options_uses_her_last_choice_while_the_site_offers_it(docker_client: docker.DockerClient) -> None:
    """JupyterHub hands a start that names no options the user's previous ones. Jovial uses them
    while the site still offers them (and the spawn form selects them); a choice the site no longer
    offers is dropped, and her progress says which and why, instead of the start being refused."""
    user = HubUser("carol")
    spawn_form = f"{HUB_URL}/hub/spawn/carol"
    try:
        user.stop()
        user.start({"profile": "large"})
        user.wait_ready()
        user.stop(restore_options=False)
        form = user.session.get(spawn_form, timeout=30)
        assert form.status_code == 200 and '<option value="large" selected>' in form.text, form.text[-2000:]
        user.start(None)
        user.wait_ready()
        limits = docker_client.services.get("jupyter-carol").attrs["Spec"]["TaskTemplate"]["Resources"]["Limits"]
        assert limits == {"NanoCPUs": 2_000_000_000, "MemoryBytes": 4 * 1024**3}
        user.stop(restore_options=False)

        # What the hub remembers once the site has removed a profile and an image she had chosen
        # (as if the site's configuration had changed since her last start).
        reply = user.api.patch(user.server_api_url, json={"user_options": {"profile": "retired", "image": "gone"}}, timeout=10)
        assert reply.status_code == 200, reply.text
        form = user.session.get(spawn_form, timeout=30)
        assert form.status_code == 200 and "Your previous choice profile = &#x27;retired&#x27; is not possible any more" in form.text
        assert '<option value="small">' in form.text and ' selected>' not in form.text.split('id="profile"')[1].split("</select>")[0]
        messages = user.start(None)
        user.wait_ready()
        dropped = [m for m in messages if m.startswith("Your previous choice ")]
        assert len(dropped) == 2, messages
        assert "profile = 'retired' is not possible any more (Unknown profile 'retired'" in dropped[0] + dropped[1]
        assert "image = 'gone' is not possible any more (The image 'gone' is not offered here" in dropped[0] + dropped[1]
        limits = docker_client.services.get("jupyter-carol").attrs["Spec"]["TaskTemplate"]["Resources"]["Limits"]
        assert limits == {"NanoCPUs": 1_000_000_000, "MemoryBytes": 2 * 1024**3}
    finally:
        user.stop()
        remove_servers_of("carol")
