"""The hub holds no Docker socket: it reaches the engine only through docker-proxy, which passes
the reads the spawner makes, lets it create and remove only user servers as Jovial's builder makes
them (checked in the JSON body), and refuses everything else with 403 and the rule broken.

Each request is made from inside the running hub container, exactly as the hub makes them (the
bodies are the Docker SDK's serialisation of Jovial's builder on tests/specs.py's spec); what was
made, or not, is checked on the engine itself."""

import copy
import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from jovial.backends.swarm.builder import config_args, service_args
from tests.hub import FS_ROOT, wait_for_no_containers
from tests.integration.conftest import remove_objects_named
from tests.specs import TEST_USER, server_spec, site_settings

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


# ---- what a hub may create and remove: the bodies are checked ---------------------------------------

NAME = "jupyter-docker-proxy-test"
OTHER_NAME = "jupyter-docker-proxy-other"  # a hostile body's other name (the rest use NAME)

# Sent from the hub container: each step is (method, path, JSON body or None) -> [status, message].
# The IDs of the configs it creates replace "{<config name>}" in later paths and bodies.
REQUESTS = r"""
import json, os, docker
api = docker.APIClient(version="auto", **docker.utils.kwargs_from_env())
ids, out = {}, []
for method, path, body in json.loads(os.environ["REQUESTS"]):
    text = json.dumps([path, body])
    for name, config_id in ids.items():
        text = text.replace("{" + name + "}", config_id)
    path, body = json.loads(text)
    reply = api._post_json(api.base_url + path, data=body) if method == "post" else getattr(api, "_" + method)(api.base_url + path)
    try:
        answer = reply.json()
    except ValueError:
        answer = None
    if path.endswith("/configs/create") and reply.status_code == 201:
        ids[body["Name"]] = answer["ID"]
    out.append([reply.status_code, answer.get("message", "") if isinstance(answer, dict) else ""])
print(json.dumps(out))
"""


def requests_from_the_hub(steps: list[tuple[str, str, Any]]) -> list[tuple[int, str]]:
    result = hub_container(docker.from_env()).exec_run(["python3", "-c", REQUESTS], environment={"REQUESTS": json.dumps(steps)})
    assert result.exit_code == 0, result.output.decode()
    return [tuple(answer) for answer in json.loads(result.output)]


class _Sent(Exception):
    pass


def sdk_body(call: Callable[[docker.APIClient], Any]) -> Any:
    """The JSON body the Docker SDK posts for `call`, serialised as the hub's SDK does (not sent)."""
    api = docker.APIClient(base_url="tcp://127.0.0.1:9", version="1.41")
    sent = []

    def post_json(url: str, data: Any, **kwargs: Any) -> None:
        sent.append(json.loads(json.dumps(data)))
        raise _Sent

    api._post_json = post_json
    with pytest.raises(_Sent):
        call(api)
    return sent[0]


def deployed_image() -> str:
    """The image the deployed hub (and so its docker-proxy) is given: JOVIAL_SINGLEUSER_IMAGE."""
    env = docker.from_env().services.get("jovial_hub").attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
    return next(e.split("=", 1)[1] for e in env if e.startswith("JOVIAL_SINGLEUSER_IMAGE="))


@pytest.fixture
def checking_proxy() -> None:
    """Fail before any hostile call if the deployed docker-proxy does not check writes (an image
    from before the bodies were checked would carry them out, e.g. remove the hub): a harmless
    sentinel that it refuses (a removal with a query) and an unchecking proxy passes on (-> 404)."""
    ((status, message),) = requests_from_the_hub([("delete", "/v1.41/services/jupyter-no-such-server-x?force=1", None)])
    if status != 403 or "a query" not in message:
        pytest.fail(f"the deployed docker-proxy does not check writes (HTTP {status} {message!r}): deploy its current image first")


@pytest.fixture
def builder_bodies(checking_proxy: None) -> Iterator[tuple[list[Any], Any]]:
    """Jovial's builder on tests/specs.py's spec named NAME: its configs' bodies and its service's
    body (config IDs as "{<config name>}", filled in by REQUESTS). Whatever a test made is removed."""
    spec = server_spec(NAME, dataclasses.replace(site_settings(), image=deployed_image()))
    configs = config_args(spec)
    config_bodies = [sdk_body(lambda api, c=c: api.create_config(c.name, c.data, labels=c.labels)) for c in configs]
    service = sdk_body(lambda api: api.create_service(**service_args(spec, {c.name: "{" + c.name + "}" for c in configs})))
    try:
        yield config_bodies, service
    finally:
        for name in (NAME, OTHER_NAME):
            remove_objects_named(name)
        wait_for_no_containers(docker.from_env(), TEST_USER)


def _change(*path: str | int, value: Any = ..., append: Any = ...) -> Callable[[Any], None]:
    def change(body: Any) -> None:
        for key in path[:-1]:
            body = body[key]
        if append is not ...:
            body[path[-1]].append(append)
        elif value is ...:
            del body[path[-1]]
        else:
            body[path[-1]] = value
    return change


SPEC = ("TaskTemplate", "ContainerSpec")
HOSTILE = {
    "bind of /": (
        _change(*SPEC, "Mounts", append={"Type": "bind", "Source": "/", "Target": "/host"}),
        "is outside the shared filesystem root",
    ),
    "bind of the Docker socket": (
        _change(*SPEC, "Mounts", append={"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/var/run/docker.sock"}),
        "'/var/run/docker.sock' is outside the shared filesystem root",
    ),
    "bind escaping with ..": (
        _change(*SPEC, "Mounts", append={"Type": "bind", "Source": f"{FS_ROOT}/home/../../../../..", "Target": "/host"}),
        "is not an absolute, normalised path",
    ),
    "a volume": (
        _change(*SPEC, "Mounts", append={"Type": "volume", "Source": "jovial_hub_data", "Target": "/hub"}),
        "Type 'volume' is refused",
    ),
    "CapabilityAdd": (_change(*SPEC, "CapabilityAdd", value=["SYS_ADMIN"]), "CapabilityAdd is refused"),
    "no CapabilityDrop": (_change(*SPEC, "CapabilityDrop"), "CapabilityDrop must be [\"ALL\"]"),
    "privileges": (_change(*SPEC, "Privileges", value={"SELinuxContext": {"Disable": True}}), "Privileges is refused"),
    "User root": (_change(*SPEC, "User", value="root"), "must be a numeric uid:gid, neither of them 0"),
    "User 0:0": (_change(*SPEC, "User", value="0:0"), "must be a numeric uid:gid, neither of them 0"),
    "no User": (_change(*SPEC, "User"), "User is missing"),
    "the stack's secrets": (
        _change(*SPEC, "Secrets", value=[{"SecretName": "jovial_cookie_secret", "SecretID": "x", "File": {"Name": "cookie"}}]),
        "Secrets is refused",
    ),
    "the host network": (_change("TaskTemplate", "Networks", 0, "Target", value="host"), "is not the users' network"),
    "the Docker API network": (_change("TaskTemplate", "Networks", 0, "Target", value="jovial_docker-api"), "is not the users' network"),
    "a published port": (_change("EndpointSpec", "Ports", value=[{"TargetPort": 8888, "PublishedPort": 18888}]), "published ports"),
    "a host-mode port": (
        _change("EndpointSpec", "Ports", value=[{"TargetPort": 8888, "PublishedPort": 18888, "PublishMode": "host"}]),
        "published ports",
    ),
    "on managers only": (_change("TaskTemplate", "Placement", "Constraints", value=["node.role==manager"]), "is refused: only node.labels"),
    "a stack label": (_change("Labels", "com.docker.stack.namespace", value="jovial"), "is not one of Jovial's"),
    "another server's object label": (_change("Labels", "jovial.object", value=OTHER_NAME), "must be the service's name"),
    "a name that is not a server's": (_change("Name", value="jovial_evil"), "'jovial_evil' is not a user server's name"),
    "an image not in the site's list": (_change(*SPEC, "Image", value="jovial/docker-proxy:dev"), "is not one of the site's images"),
    "an unknown key": (_change(*SPEC, "Hostname", value="hub"), "the key 'Hostname' is not allowed"),
}


def test_hostile_services_are_refused_with_their_rule_and_nothing_is_made(builder_bodies: tuple[list[Any], Any]) -> None:
    config_bodies, service = builder_bodies
    steps, expected = [("post", "/v1.41/configs/create", body) for body in config_bodies], []
    for change, reason in HOSTILE.values():
        hostile = copy.deepcopy(service)
        change(hostile)
        steps.append(("post", "/v1.41/services/create", hostile))
        expected.append(reason)
    answers = requests_from_the_hub(steps)
    assert [status for status, _ in answers[: len(config_bodies)]] == [201] * len(config_bodies)
    for label, (status, message), reason in zip(HOSTILE, answers[len(config_bodies) :], expected, strict=True):
        assert status == 403 and reason in message, f"{label}: HTTP {status} {message!r}"
    client = docker.from_env()
    for name in (NAME, OTHER_NAME, "jovial_evil"):
        assert not [s for s in client.services.list(filters={"name": name}) if s.name == name], f"{name} was made"


def test_removing_a_stack_service_is_refused_and_the_hub_runs_on(checking_proxy: None) -> None:
    client = docker.from_env()
    before = hub_container(client).id
    ((status, message),) = requests_from_the_hub([("delete", "/v1.41/services/jovial_hub", None)])
    assert status == 403 and "'jovial_hub' is not named like one" in message
    assert client.services.get("jovial_hub")
    assert hub_container(client).id == before and hub_container(client).status == "running"


def test_a_server_as_the_builder_makes_it_is_created_and_removed(builder_bodies: tuple[list[Any], Any]) -> None:
    config_bodies, service = builder_bodies
    config_names = [body["Name"] for body in config_bodies]
    answers = requests_from_the_hub(
        [("post", "/v1.41/configs/create", body) for body in config_bodies]
        + [("post", "/v1.41/services/create", service)]
    )
    assert [status for status, _ in answers] == [201] * len(config_bodies) + [201], answers
    client = docker.from_env()
    made = client.services.get(NAME)
    assert made.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["User"] == service["TaskTemplate"]["ContainerSpec"]["User"]
    config_ids = {c.name: c.id for c in client.configs.list(filters={"label": f"jovial.object={NAME}"})}
    assert sorted(config_ids) == sorted(config_names)
    # Removal as the spawner does it: the service by name, then its configs by ID.
    answers = requests_from_the_hub(
        [("delete", f"/v1.41/services/{NAME}", None)] + [("delete", f"/v1.41/configs/{config_ids[n]}", None) for n in config_names]
    )
    assert [status for status, _ in answers] == [200] + [204] * len(config_names), answers
    assert not [s for s in client.services.list(filters={"name": NAME}) if s.name == NAME]
    assert not client.configs.list(filters={"label": f"jovial.object={NAME}"})
    # A second removal: 404, which the spawner takes as "already gone".
    assert requests_from_the_hub([("delete", f"/v1.41/services/{NAME}", None)])[0][0] == 404
