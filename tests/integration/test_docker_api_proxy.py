"""The hub holds no Docker socket: it reaches the engine only through docker-proxy (HAProxy with an
allow-list), which passes the calls the spawner makes and refuses everything else with 403.

Each request is made from inside the running hub container, exactly as the hub makes them."""

import json

import docker
import pytest

pytestmark = pytest.mark.swarm

# Sent from the hub container by a script using the same docker SDK the spawner uses.
PROBE = r"""
import json, os, docker
api = docker.APIClient(version="auto", **docker.utils.kwargs_from_env())  # as dockerspawner makes it
def status(method, path):
    return getattr(api, "_" + method)(api.base_url + path).status_code
calls = json.loads(os.environ["CALLS"])
print(json.dumps({label: status(*call) for label, call in calls.items()}))
"""

ALLOWED = {
    "ping": ("get", "/_ping"),
    "version": ("get", "/v1.41/version"),
    "list services": ("get", "/v1.41/services"),
    "list tasks": ("get", "/v1.41/tasks"),
    "list nodes": ("get", "/v1.41/nodes"),
    "list configs": ("get", "/v1.41/configs"),
    "inspect the hub's network": ("get", "/v1.41/networks/jovial"),
    "events (until now)": ("get", "/v1.41/events?since=0&until=1"),
}
FORBIDDEN = {
    "list containers": ("get", "/v1.41/containers/json"),
    "create a container": ("post", "/v1.41/containers/create"),
    "exec in a container": ("post", "/v1.41/containers/jovial_hub/exec"),
    "build an image": ("post", "/v1.41/build"),
    "pull an image": ("post", "/v1.41/images/create?fromImage=busybox"),
    "leave the swarm": ("post", "/v1.41/swarm/leave?force=1"),
    "read the swarm's join tokens": ("get", "/v1.41/swarm"),
    "list secrets": ("get", "/v1.41/secrets"),
    "create a volume": ("post", "/v1.41/volumes/create"),
    "update a service": ("post", "/v1.41/services/jovial_hub/update"),
    "update a node": ("post", "/v1.41/nodes/self/update"),
    "install a plugin": ("post", "/v1.41/plugins/pull"),
    "an encoded path escaping the list": ("get", "/v1.41/services/..%2Fcontainers%2Fjson"),
    "an encoded path escaping the list, no version": ("get", "/services/%2E%2E/containers/json"),
}


def hub_container(client: docker.DockerClient) -> docker.models.containers.Container:
    (container,) = client.containers.list(filters={"label": "com.docker.swarm.service.name=jovial_hub"})
    return container


def statuses_from_the_hub(calls: dict[str, tuple[str, str]]) -> dict[str, int]:
    result = hub_container(docker.from_env()).exec_run(["python3", "-c", PROBE], environment={"CALLS": json.dumps(calls)})
    assert result.exit_code == 0, result.output.decode()
    return json.loads(result.output)


def test_the_hub_has_no_docker_socket() -> None:
    result = hub_container(docker.from_env()).exec_run(["ls", "/var/run/docker.sock", "/run/docker.sock"])
    assert result.exit_code != 0, result.output


def test_the_calls_the_spawner_needs_pass() -> None:
    assert statuses_from_the_hub(ALLOWED) == {label: 200 for label in ALLOWED}


def test_every_other_call_is_refused() -> None:
    assert statuses_from_the_hub(FORBIDDEN) == {label: 403 for label in FORBIDDEN}
