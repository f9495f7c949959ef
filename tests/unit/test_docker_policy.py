"""The docker-proxy's policy (images/docker-proxy/jovial_docker_proxy/policy.py), and its server
between the real Docker SDK and a fake engine on a Unix socket (no Docker engine needed).

The bodies checked are the real ones: Jovial's builder run on tests/specs.py's spec and serialised
by the Docker SDK the hub uses, and stock dockerspawner.SwarmSpawner run with the benchmarks' real
stock_hub_config.py. Every hostile variation is one of those bodies with one thing changed.

The proxy's package is not installed in the test venv (it lives in its image): this file puts
images/docker-proxy/ on sys.path to import it.
"""

import asyncio
import base64
import copy
import json
import logging
import re
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from aiohttp import web
from docker.errors import APIError, NotFound
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "images" / "docker-proxy"))

import tests.specs  # noqa: E402
from jovial.backends.swarm.builder import config_args, service_args  # noqa: E402
from jovial.spec import DataCollection, ResourceSpec  # noqa: E402
from jovial_docker_proxy import server  # noqa: E402
from jovial_docker_proxy.policy import (  # noqa: E402
    Allowed,
    Call,
    Decision,
    Facts,
    NeedFacts,
    NotFound as NotFoundDecision,
    Refused,
    decide,
)
from jovial_docker_proxy.settings import Settings, SettingsError, settings_from_env  # noqa: E402
from tests.hub import FS_ROOT  # noqa: E402

ROOT = str(FS_ROOT)
IMAGE = "sha256:" + "5" * 64
ASTRO = "sha256:" + "a" * 64
NETWORK_ID = "u3hmotn1w6vxgt6p60i84tfa8"
NAME = "jupyter-policy-test"
ENV = {
    "JOVIAL_FS_ROOT": ROOT,
    "JOVIAL_NETWORK": "jovial",
    "JOVIAL_SINGLEUSER_IMAGE": IMAGE,
    "JOVIAL_ASTRO_IMAGE": ASTRO,
    "JOVIAL_OBJECT_PREFIX": "jupyter-",
    "JOVIAL_FS_LABEL": "jovial.fs",
    "JOVIAL_FS_LABEL_VALUE": "lustre",
}
SETTINGS = settings_from_env(ENV)


# ---- the real bodies -----------------------------------------------------------------------------


class _Sent(Exception):
    pass


def sdk_bodies(*calls: Callable[[docker.APIClient], Any]) -> list[tuple[str, Any]]:
    """The (path, JSON body) that the Docker SDK posts for each of `calls` (nothing is sent)."""
    api = docker.APIClient(base_url="tcp://127.0.0.1:9", version="1.41")  # a version given: no request
    sent: list[tuple[str, Any]] = []

    def post_json(url: str, data: Any, **kwargs: Any) -> None:
        sent.append((url.removeprefix(api.base_url), json.loads(json.dumps(data))))
        raise _Sent

    api._post_json = post_json  # type: ignore[method-assign]
    for call in calls:
        with pytest.raises(_Sent):
            call(api)
    return sent


def builder_bodies(full: bool = False) -> tuple[list[Any], Any, Facts]:
    """Jovial's builder on tests/specs.py's spec (`full`: with project and data mounts, scratch,
    reservations and a GPU): the configs' bodies, the service's body, and the facts the proxy
    would look up for them (each config ID -> its inspection)."""
    site = None
    if full:
        site = tests.specs.site_settings(
            project_source_template=f"{ROOT}/projects/{{group}}",
            data_collections=(DataCollection(f"{ROOT}/data/demo", "/data/demo"),),
            scratch_bytes=2**30,
            resources=ResourceSpec(
                cpu_limit=0.5, cpu_reservation=0.25, mem_limit=2**29, mem_reservation=2**20, generic=(("NVIDIA-GPU", 1),)
            ),
        )
    spec = tests.specs.server_spec(NAME, site=site, project_groups=("testers",) if full else ())
    ids = {c.name: f"cfg{c.key}0123456789" for c in config_args(spec)}

    *configs, (service_path, service) = sdk_bodies(
        *[lambda api, c=c: api.create_config(c.name, c.data, labels=c.labels) for c in config_args(spec)],
        lambda api: api.create_service(**service_args(spec, ids)),
    )
    assert service_path == "/v1.41/services/create" and all(path == "/v1.41/configs/create" for path, _ in configs)
    facts = Facts(configs={ids[body["Name"]]: {"ID": ids[body["Name"]], "Spec": body} for _, body in configs})
    return [body for _, body in configs], service, facts


@pytest.fixture(autouse=True)
def offline_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/specs.py without its I/O: a made-up image ID, and no home made on the shared filesystem."""
    monkeypatch.setattr(tests.specs, "singleuser_image", lambda: IMAGE)
    monkeypatch.setattr(tests.specs, "ensure_home", lambda *args, **kwargs: False)


def create(body: Any, facts: Facts | None = None, settings: Settings = SETTINGS, path: str = "/v1.41/services/create") -> Decision:
    return decide(Call("POST", path, "", json.dumps(body).encode()), settings, facts)


# ---- what Jovial's builder makes is allowed ------------------------------------------------------


@pytest.mark.parametrize("full", [False, True], ids=["tests/specs.py's spec", "with every kind of mount and resource"])
def test_the_builders_body_is_allowed_as_it_is(full: bool) -> None:
    configs, service, facts = builder_bodies(full)
    # First the proxy asks to look up the configs the service refers to, then it allows it.
    assert create(service) == NeedFacts(configs=tuple(facts.configs))
    decision = create(service, facts)
    assert isinstance(decision, Allowed), decision
    assert decision.path == "/v1.41/services/create" and json.loads(decision.body) == service
    for body in configs:
        decision = create(body, path="/v1.41/configs/create")
        assert isinstance(decision, Allowed) and json.loads(decision.body) == body


def test_the_users_network_may_be_given_by_its_id() -> None:
    _, service, facts = builder_bodies()
    service["TaskTemplate"]["Networks"][0]["Target"] = NETWORK_ID
    assert create(service, facts) == NeedFacts(networks=("jovial",))
    assert isinstance(create(service, Facts(networks={"jovial": NETWORK_ID}, configs=facts.configs)), Allowed)
    refused = create(service, Facts(networks={"jovial": "someotherid0000000000000"}, configs=facts.configs))
    assert isinstance(refused, Refused) and "is not the users' network 'jovial'" in refused.reason


# ---- every hostile variation is refused, with its rule -------------------------------------------

CONTAINER = ("TaskTemplate", "ContainerSpec")


def _set(*path: str | int, value: Any) -> Callable[[Any], None]:
    def change(body: Any) -> None:
        for key in path[:-1]:
            body = body[key]
        body[path[-1]] = value
    return change


def _delete(*path: str | int) -> Callable[[Any], None]:
    def change(body: Any) -> None:
        for key in path[:-1]:
            body = body[key]
        del body[path[-1]]
    return change


def _add_mount(mount: dict[str, Any]) -> Callable[[Any], None]:
    return lambda body: body["TaskTemplate"]["ContainerSpec"]["Mounts"].append(mount)


def _bind(source: str) -> Callable[[Any], None]:
    return _add_mount({"Type": "bind", "Source": source, "Target": "/host"})


HOSTILE: dict[str, tuple[Callable[[Any], None], str]] = {
    # mounts
    "bind of /": (_bind("/"), "Mounts[4].Source '/' is outside the shared filesystem root"),
    "bind of the Docker socket": (_bind("/var/run/docker.sock"), "'/var/run/docker.sock' is outside the shared filesystem root"),
    "bind escaping the root with ..": (_bind(f"{ROOT}/home/../../../../etc"), "is not an absolute, normalised path"),
    "bind of a sibling sharing the root's prefix": (_bind(f"{ROOT}-other/x"), "is outside the shared filesystem root"),
    "bind with //": (_bind(f"{ROOT}//home"), "is not an absolute, normalised path"),
    "bind with a trailing /.": (_bind(f"{ROOT}/."), "is not an absolute, normalised path"),
    "bind of a relative path": (_bind("home/alice"), "is not an absolute, normalised path"),
    "bind with propagation options": (
        _add_mount({"Type": "bind", "Source": f"{ROOT}/home", "Target": "/h", "BindOptions": {"Propagation": "rshared"}}),
        "Mounts[4].BindOptions is refused",
    ),
    "volume mount": (_add_mount({"Type": "volume", "Source": "hub_data", "Target": "/v"}), "Mounts[4].Type 'volume' is refused"),
    "volume driver": (
        _add_mount({"Type": "volume", "Source": "x", "Target": "/v", "VolumeOptions": {"DriverConfig": {"Name": "local"}}}),
        "VolumeOptions is refused",
    ),
    "npipe mount": (_add_mount({"Type": "npipe", "Source": r"\\.\pipe\docker_engine", "Target": "/p"}), "Type 'npipe' is refused"),
    "tmpfs with a source": (_add_mount({"Type": "tmpfs", "Source": "/", "Target": "/t"}), "Source must be empty for a tmpfs mount"),
    # capabilities and privileges
    "CapabilityAdd": (_set(*CONTAINER, "CapabilityAdd", value=["SYS_ADMIN"]), "ContainerSpec.CapabilityAdd is refused"),
    "no CapabilityDrop": (_delete(*CONTAINER, "CapabilityDrop"), "CapabilityDrop must be [\"ALL\"], not None"),
    "CapabilityDrop of one capability": (_set(*CONTAINER, "CapabilityDrop", value=["NET_RAW"]), "CapabilityDrop must be [\"ALL\"]"),
    "SELinux disabled": (
        _set(*CONTAINER, "Privileges", value={"SELinuxContext": {"Disable": True}}),
        "ContainerSpec.Privileges is refused",
    ),
    "seccomp unconfined": (
        _set(*CONTAINER, "Privileges", value={"Seccomp": {"Mode": "unconfined"}}),
        "ContainerSpec.Privileges is refused",
    ),
    "AppArmor unconfined": (
        _set(*CONTAINER, "Privileges", value={"AppArmor": {"Mode": "disabled"}}),
        "ContainerSpec.Privileges is refused",
    ),
    "sysctls": (_set(*CONTAINER, "Sysctls", value={"net.ipv4.ip_forward": "1"}), "ContainerSpec.Sysctls is refused"),
    "ulimits": (_set(*CONTAINER, "Ulimits", value=[{"Name": "nofile", "Soft": 1, "Hard": 1}]), "ContainerSpec.Ulimits is refused"),
    "a plugin runtime": (_set("TaskTemplate", "Runtime", value="plugin"), "TaskTemplate.Runtime is refused"),
    "a log driver": (_set("TaskTemplate", "LogDriver", value={"Name": "syslog"}), "TaskTemplate.LogDriver is refused"),
    # identity
    "User root by name": (_set(*CONTAINER, "User", value="root"), "User 'root' must be a numeric uid:gid, neither of them 0"),
    "User 0:0": (_set(*CONTAINER, "User", value="0:0"), "User '0:0' must be a numeric uid:gid, neither of them 0"),
    "User 0": (_set(*CONTAINER, "User", value="0"), "User '0' must be a numeric uid:gid"),
    "User with gid 0": (_set(*CONTAINER, "User", value="19001:0"), "User '19001:0' must be a numeric uid:gid"),
    "User uid only": (_set(*CONTAINER, "User", value="19001"), "User '19001' must be a numeric uid:gid"),
    "User by name": (_set(*CONTAINER, "User", value="jovial-test:testers"), "must be a numeric uid:gid"),
    "no User": (_delete(*CONTAINER, "User"), "ContainerSpec.User is missing"),
    "group 0": (_set(*CONTAINER, "Groups", value=["19002", "0"]), "Groups[1] '0' must be a numeric gid other than 0"),
    "group by name": (_set(*CONTAINER, "Groups", value=["docker"]), "Groups[0] 'docker' must be a numeric gid other than 0"),
    # system ids: a symlink in the shared filesystem to the engine's socket, bound into a server in
    # the docker group, would give the engine (root on the node) to whoever controls the hub
    "a system group (docker's)": (_set(*CONTAINER, "Groups", value=["19002", "999"]), "Groups[1] 999 is below the least id 1000"),
    "a system uid": (_set(*CONTAINER, "User", value="33:19001"), "User '33:19001' is below the least id 1000"),
    "a system gid": (_set(*CONTAINER, "User", value="19001:999"), "User '19001:999' is below the least id 1000"),
    # secrets and configs
    "the stack's secrets": (
        _set(*CONTAINER, "Secrets", value=[{"SecretID": "x", "SecretName": "jovial_cookie_secret", "File": {"Name": "c"}}]),
        "ContainerSpec.Secrets is refused",
    ),
    "the stack's hub config": (
        _set(*CONTAINER, "Configs", 0, "ConfigName", value="jovial_hub_config_0123456789abcdef"),
        "Configs[0].ConfigName 'jovial_hub_config_0123456789abcdef' is not one of Jovial's configs",
    ),
    "a config file that is setuid": (
        _set(*CONTAINER, "Configs", 0, "File", "Mode", value=0o4755),
        "Configs[0].File.Mode must be a whole number from 0 to 511",
    ),
    # networks and ports
    "the host network": (_set("TaskTemplate", "Networks", 0, "Target", value="host"), "Target 'host' is not the users' network 'jovial'"),
    "the hub's Docker API network": (
        _set("TaskTemplate", "Networks", 0, "Target", value="jovial_docker-api"),
        "Target 'jovial_docker-api' is not the users' network 'jovial'",
    ),
    "a second network": (
        lambda body: body["TaskTemplate"]["Networks"].append({"Target": "jovial_docker-api"}),
        "must be exactly the users' network 'jovial', not 2 networks",
    ),
    "no network": (_delete("TaskTemplate", "Networks"), "must be exactly the users' network 'jovial', not 0 networks"),
    "an alias taking over ldap": (_set("TaskTemplate", "Networks", 0, "Aliases", value=["ldap"]), "Networks[0].Aliases is refused"),
    "service-level networks": (_set("Networks", value=[{"Target": "host"}]), "services/create.Networks is refused"),
    "a published port": (
        _set("EndpointSpec", "Ports", value=[{"Protocol": "tcp", "TargetPort": 8888, "PublishedPort": 8888}]),
        "EndpointSpec.Ports is refused: published ports",
    ),
    "a host-mode port": (
        _set("EndpointSpec", "Ports", value=[{"TargetPort": 22, "PublishedPort": 2222, "PublishMode": "host"}]),
        "EndpointSpec.Ports is refused: published ports",
    ),
    # placement and mode
    "on managers": (
        _set("TaskTemplate", "Placement", "Constraints", value=["node.role==manager"]),
        "Constraints[0] 'node.role==manager' is refused",
    ),
    "without the shared filesystem's label": (
        _set("TaskTemplate", "Placement", "Constraints", value=["node.labels.gpu==true"]),
        "Constraints must include 'node.labels.jovial.fs==lustre'",
    ),
    "global mode": (_set("Mode", value={"Global": {}}), "Mode: the key 'Global' is not allowed"),
    "many replicas": (_set("Mode", value={"Replicated": {"Replicas": 50}}), "a user server runs one task at most"),
    # labels and names
    "a stack's label": (
        _set("Labels", "com.docker.stack.namespace", value="jovial"),
        "the label 'com.docker.stack.namespace' is not one of Jovial's",
    ),
    "no labels": (_delete("Labels"), "Labels are missing"),
    "no jovial.managed label": (_delete("Labels", "jovial.managed"), "the label jovial.managed is missing"),
    "jovial.managed false": (_set("Labels", "jovial.managed", value="false"), "['jovial.managed'] must be 'true'"),
    "no jovial.user label": (_delete("Labels", "jovial.user"), "the label jovial.user is missing"),
    "jovial.object of another server": (
        _set("Labels", "jovial.object", value="jupyter-bob"),
        "must be the service's name 'jupyter-policy-test'",
    ),
    "a container label of the stack": (
        _set(*CONTAINER, "Labels", "com.docker.stack.namespace", value="jovial"),
        "ContainerSpec.Labels: the label 'com.docker.stack.namespace' is not one of Jovial's",
    ),
    "a stack service's name": (_set("Name", value="jovial_hub"), "Name 'jovial_hub' is not a user server's name"),
    "an alias-like name": (_set("Name", value="ldap"), "Name 'ldap' is not a user server's name"),
    "a name with capitals": (_set("Name", value="jupyter-Alice"), "is not a user server's name"),
    "a name too long": (_set("Name", value="jupyter-" + "a" * 56), "is not a user server's name"),
    # image
    "an image not in the list": (
        _set(*CONTAINER, "Image", value="busybox:latest"),
        "Image 'busybox:latest' is not one of the site's images",
    ),
    "the docker-proxy's own image": (_set(*CONTAINER, "Image", value="jovial/docker-proxy:dev"), "is not one of the site's images"),
    # unknown keys (Go matches JSON keys without regard to case: "mounts" would reach Mounts)
    "a lowercase key that Go would read as Mounts": (
        _set(*CONTAINER, "mounts", value=[{"Type": "bind", "Source": "/", "Target": "/host"}]),
        "ContainerSpec: the key 'mounts' is not allowed",
    ),
    "an unknown container key": (_set(*CONTAINER, "Hostname", value="hub"), "ContainerSpec: the key 'Hostname' is not allowed"),
    "an unknown service key": (_set("UpdateConfig", value={"Parallelism": 1}), "services/create.UpdateConfig is refused"),
    "an unknown top-level key": (_set("Extra", value=1), "services/create: the key 'Extra' is not allowed"),
    "an unknown mount key": (
        _set(*CONTAINER, "Mounts", 0, "Consistency", value="cached"),
        "Mounts[0]: the key 'Consistency' is not allowed",
    ),
}


@pytest.mark.parametrize("change, reason", HOSTILE.values(), ids=HOSTILE.keys())
def test_each_hostile_service_is_refused_with_its_rule(change: Callable[[Any], None], reason: str) -> None:
    _, service, facts = builder_bodies(full=True)
    hostile = copy.deepcopy(service)
    change(hostile)
    assert hostile != service
    decision = create(hostile, facts)
    assert isinstance(decision, Refused), decision
    assert reason in decision.reason
    # Hostile bodies are refused before any lookup is asked for.
    assert isinstance(create(hostile), Refused)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, (*prefix, key))


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_change_anywhere_gets_a_decision_never_an_error(data: st.DataObject) -> None:
    """Whatever JSON replaces whatever part of the builder's body, the policy answers (a crash
    would be a 500 from the server: closed, but not the rule the hub's operator needs)."""
    _, service, facts = builder_bodies(full=True)
    path = data.draw(st.sampled_from(list(_paths(service))[1:]))
    target = service
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(_JSON)
    assert isinstance(create(service, facts), (Allowed, Refused, NeedFacts))


def test_a_config_reference_to_another_servers_config_is_refused() -> None:
    _, service, facts = builder_bodies()
    other = {
        cid: {"ID": cid, "Spec": {**found["Spec"], "Labels": {"jovial.object": "jupyter-bob"}}} for cid, found in facts.configs.items()
    }
    decision = create(service, Facts(configs=other))
    assert isinstance(decision, Refused) and "is not this server's" in decision.reason
    missing = create(service, Facts(configs={cid: None for cid in facts.configs}))
    assert isinstance(missing, Refused) and "there is no config" in missing.reason


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b'{"Name": "jupyter-a", "Name": "jovial_hub"}', "the body repeats the key 'Name'"),
        (b'{"Name": NaN}', "the body contains NaN"),
        (b'{"Name": "\xff"}', "the body is not valid JSON"),
        (b"not json", "the body is not valid JSON"),
        (b'[{"Name": "jupyter-a"}]', "the body must be a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "the body is nested too deeply"),
    ],
)
def test_bodies_that_are_not_plain_json_objects_are_refused(raw: bytes, reason: str) -> None:
    decision = decide(Call("POST", "/v1.41/services/create", "", raw), SETTINGS)
    assert isinstance(decision, Refused) and reason in decision.reason


def test_a_duplicate_key_deep_inside_is_refused() -> None:
    _, service, facts = builder_bodies()
    raw = json.dumps(service).replace('"CapabilityDrop": ["ALL"]', '"CapabilityDrop": ["ALL"], "CapabilityDrop": []')
    decision = decide(Call("POST", "/v1.41/services/create", "", raw.encode()), SETTINGS, facts)
    assert isinstance(decision, Refused) and "repeats the key 'CapabilityDrop'" in decision.reason


@pytest.mark.parametrize("version", ["/v1.40", "/v1.24", "/v1.4", "/v0.99"])
def test_services_created_at_an_api_version_that_drops_capability_drop_are_refused(version: str) -> None:
    """Below API 1.41 the engine sets CapabilityDrop (and CapabilityAdd) to nil before creating the
    service (moby's adjustForAPIVersion): the checked ["ALL"] would never apply."""
    _, service, facts = builder_bodies()
    decision = create(service, facts, path=f"{version}/services/create")
    assert isinstance(decision, Refused) and "API versions below 1.41 are refused on services/create" in decision.reason
    for path in ("/services/create", "/v1.41/services/create", "/v1.47/services/create"):
        assert isinstance(create(service, facts, path=path), Allowed), path


# ---- configs -----------------------------------------------------------------------------------


def _config(**changes: Any) -> dict[str, Any]:
    body = {"Name": "jovial-passwd-0123456789abcdef0123", "Labels": {"jovial.object": NAME}, "Data": base64.b64encode(b"x").decode()}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


@pytest.mark.parametrize(
    "body, reason",
    [
        (_config(Labels=...), "Labels are missing"),
        (_config(Labels={}), "the label jovial.object (the server the config belongs to) is missing"),
        (_config(Labels={"jovial.object": "jovial_hub"}), "'jovial_hub' is not a user server's name"),
        (_config(Labels={"jovial.object": NAME, "com.docker.stack.namespace": "jovial"}), "is not one of Jovial's"),
        (_config(Labels={"jovial.object": NAME, "jovial.managed": "yes"}), "['jovial.managed'] must be 'true'"),
        (_config(Name="jovial_hub_config_0123456789abcdef"), "is not one of Jovial's config names"),
        (_config(Templating={"Name": "golang"}), "Templating is refused: config templates are refused"),
        (_config(Data="not base64!"), "Data must be base64"),
        (_config(Extra=1), "the key 'Extra' is not allowed"),
    ],
)
def test_configs_that_are_not_a_servers_files_are_refused(body: dict[str, Any], reason: str) -> None:
    assert isinstance(create(_config(), path="/v1.41/configs/create"), Allowed)
    decision = create(body, path="/v1.41/configs/create")
    assert isinstance(decision, Refused) and reason in decision.reason


# ---- removals: only Jovial's objects, after a look at them ---------------------------------------

HUB_SERVICE = {"ID": "qboq15xn7ieqlrjyg8dmmhgnd", "Spec": {"Name": "jovial_hub", "Labels": {"com.docker.stack.namespace": "jovial"}}}
USER_SERVICE = {
    "ID": "k2x9aaaabbbbccccddddeeeef",
    "Spec": {"Name": NAME, "Labels": {"jovial.managed": "true", "jovial.object": NAME, "jovial.user": "t"}},
}


def remove(path: str, found: dict[str, Any] | None, settings: Settings = SETTINGS) -> Decision:
    key = re.sub(r"^/v[0-9.]+", "", path)[1:]
    first = decide(Call("DELETE", path), settings)
    assert first == NeedFacts(objects=(key,))
    return decide(Call("DELETE", path), settings, Facts(objects={key: found}))


def test_removing_a_stack_service_is_refused() -> None:
    decision = remove("/v1.41/services/jovial_hub", HUB_SERVICE)
    assert isinstance(decision, Refused)
    assert "only user servers' services may be removed; 'jovial_hub' is not named like one" in decision.reason


@pytest.mark.parametrize(
    "labels, reason",
    [
        ({}, "does not carry the label jovial.managed=true"),
        ({"jovial.managed": "true", "jovial.object": "jupyter-other"}, "the label jovial.object of 'jupyter-policy-test' is not its name"),
    ],
)
def test_removing_a_service_named_like_a_server_but_not_labelled_so_is_refused(labels: dict[str, str], reason: str) -> None:
    decision = remove(f"/v1.41/services/{NAME}", {"ID": "abc123", "Spec": {"Name": NAME, "Labels": labels}})
    assert isinstance(decision, Refused) and reason in decision.reason


def test_removing_a_user_server_goes_to_the_id_that_was_looked_up() -> None:
    assert remove(f"/v1.41/services/{NAME}", USER_SERVICE) == Allowed(
        f"/v1.41/services/{USER_SERVICE['ID']}", None, f"removal of service {NAME}"
    )
    assert remove(f"/services/{NAME}", None) == NotFoundDecision(f"service {NAME} not found")


def test_removing_configs_is_only_for_a_servers_files() -> None:
    ours = {"ID": "cfg1", "Spec": {"Name": "jovial-group-0123456789abcdef0123", "Labels": {"jovial.object": NAME}}}
    assert isinstance(remove("/v1.41/configs/cfg1", ours), Allowed)
    stack = {"ID": "cfg2", "Spec": {"Name": "jovial_hub_config_0123456789abcdef", "Labels": {"com.docker.stack.namespace": "jovial"}}}
    decision = remove("/v1.41/configs/cfg2", stack)
    assert isinstance(decision, Refused) and "only user servers' configs may be removed" in decision.reason
    unlabelled = {"ID": "cfg3", "Spec": {"Name": "jovial-group-0123456789abcdef0123", "Labels": {}}}
    assert isinstance(remove("/v1.41/configs/cfg3", unlabelled), Refused)


# ---- reads and everything else -------------------------------------------------------------------

READS = [
    ("HEAD", "/_ping"), ("GET", "/_ping"), ("GET", "/version"), ("GET", "/v1.41/version"),
    ("GET", "/v1.41/events"), ("GET", "/v1.41/services"), ("GET", f"/v1.41/services/{NAME}"),
    ("GET", f"/v1.41/services/{NAME}/logs"), ("GET", "/v1.41/tasks"), ("GET", "/v1.41/nodes"),
    ("GET", "/v1.41/configs"), ("GET", "/v1.41/configs/abc"), ("GET", "/v1.41/networks/jovial"),
    ("GET", f"/v1.41/images/{IMAGE}/json"), ("GET", "/v1.41/images/jovial/singleuser:dev/json"),
]
OTHERS = [
    ("GET", "/v1.41/containers/json", "not one of the reads"),
    ("POST", "/v1.41/containers/create", "only services/create and configs/create may be posted"),
    ("POST", "/v1.41/containers/jovial_hub/exec", "only services/create and configs/create"),
    ("POST", "/v1.41/build", "only services/create"),
    ("POST", "/v1.41/images/create", "only services/create"),
    ("POST", "/v1.41/swarm/leave", "only services/create"),
    ("GET", "/v1.41/swarm", "not one of the reads"),
    ("GET", "/v1.41/secrets", "not one of the reads"),
    ("GET", "/v1.41/info", "not one of the reads"),
    ("POST", "/v1.41/volumes/create", "only services/create"),
    ("POST", "/v1.41/services/jovial_hub/update", "service updates are refused"),
    ("POST", "/v1.41/nodes/self/update", "only services/create"),
    ("POST", "/v1.41/plugins/pull", "only services/create"),
    ("DELETE", "/v1.41/containers/jovial_hub", "only services and configs may be removed"),
    ("DELETE", "/v1.41/secrets/jovial_cookie_secret", "only services and configs may be removed"),
    ("PUT", "/v1.41/containers/x/archive", "the method PUT is refused"),
    ("GET", "/v1.41/services/..%2Fcontainers%2Fjson", "encoded ('%')"),
    ("GET", "/services/%2E%2E/containers/json", "encoded ('%')"),
    ("GET", "/v1.41/services/../containers/json", "'..'"),
    ("GET", "//v1.41/containers/json", "'//'"),
    ("GET", "/v1.41/services\n/x", "not one of the reads"),
    ("POST", "/v" + "9" * 5000 + ".41/services/create", "only services/create and configs/create"),
]


@pytest.mark.parametrize("method, path", READS)
def test_the_reads_the_spawners_need_pass_with_their_query(method: str, path: str) -> None:
    assert decide(Call(method, path, "filters=%7B%7D"), SETTINGS) == Allowed(f"{path}?filters=%7B%7D")


@pytest.mark.parametrize("method, path, reason", OTHERS)
def test_everything_else_is_refused(method: str, path: str, reason: str) -> None:
    decision = decide(Call(method, path, "", b"{}"), SETTINGS)
    assert isinstance(decision, Refused) and reason in decision.reason


def test_writes_with_a_query_are_refused() -> None:
    decision = decide(Call("DELETE", f"/v1.41/services/{NAME}", "force=1"), SETTINGS)
    assert isinstance(decision, Refused) and "a query" in decision.reason


# ---- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"JOVIAL_FS_ROOT": ""}, "JOVIAL_FS_ROOT must be set"),
        ({"JOVIAL_FS_ROOT": "/"}, "JOVIAL_FS_ROOT must be an absolute, normalised path other than /"),
        ({"JOVIAL_FS_ROOT": "lustre"}, "JOVIAL_FS_ROOT must be an absolute"),
        ({"JOVIAL_FS_ROOT": "/lustre/"}, "JOVIAL_FS_ROOT must be an absolute, normalised path"),
        ({"JOVIAL_FS_ROOT": "/lustre/../etc"}, "JOVIAL_FS_ROOT must be an absolute, normalised path"),
        ({"JOVIAL_NETWORK": ""}, "JOVIAL_NETWORK must be set"),
        ({"JOVIAL_NETWORK": "host"}, "JOVIAL_NETWORK must name the users' overlay network"),
        ({"JOVIAL_SINGLEUSER_IMAGE": ""}, "JOVIAL_SINGLEUSER_IMAGE must be set"),
        ({"JOVIAL_OBJECT_PREFIX": ""}, "JOVIAL_OBJECT_PREFIX must be set"),
        ({"JOVIAL_OBJECT_PREFIX": "Jupyter_"}, "JOVIAL_OBJECT_PREFIX must be lowercase"),
        ({"JOVIAL_FS_LABEL": ""}, "JOVIAL_FS_LABEL must be set"),
        ({"JOVIAL_FS_LABEL_VALUE": "a b"}, "JOVIAL_FS_LABEL_VALUE must not contain whitespace"),
        ({"JOVIAL_MIN_ID": "0"}, "JOVIAL_MIN_ID must be a whole number of at least 1, not '0'"),
        ({"JOVIAL_MIN_ID": "lots"}, "JOVIAL_MIN_ID must be a whole number of at least 1, not 'lots'"),
    ],
)
def test_a_missing_or_bad_setting_is_named(changes: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings_from_env({**ENV, **changes})


def test_the_least_id_is_1000_unless_the_site_says_otherwise() -> None:
    assert SETTINGS.min_id == 1000 and settings_from_env({**ENV, "JOVIAL_MIN_ID": "500"}).min_id == 500


def test_the_astro_and_extra_images_are_optional() -> None:
    assert settings_from_env({**ENV, "JOVIAL_ASTRO_IMAGE": ""}).images == {IMAGE}
    assert SETTINGS.images == {IMAGE, ASTRO}
    extra = settings_from_env({**ENV, "JOVIAL_EXTRA_IMAGES": " site/gpu:1  sha256:" + "b" * 64 + " "})
    assert extra.images == {IMAGE, ASTRO, "site/gpu:1", "sha256:" + "b" * 64}
    with pytest.raises(SettingsError, match="JOVIAL_EXTRA_IMAGES: 'bad;image' is not an image"):
        settings_from_env({**ENV, "JOVIAL_EXTRA_IMAGES": "bad;image"})


# ---- the benchmarks' stock SwarmSpawner complies -----------------------------------------------

STOCK_SETTINGS = settings_from_env({**ENV, "JOVIAL_NETWORK": "jovial-stock", "JOVIAL_OBJECT_PREFIX": "stock-"})


async def stock_service_body() -> Any:
    """The body stock dockerspawner.SwarmSpawner posts for student01, configured by the real
    benchmarks/stock_hub_config.py (Jovial's settings it loads: those of the stock stack)."""
    from dockerspawner import SwarmSpawner
    from jupyterhub.objects import Hub
    from jupyterhub.utils import maybe_future
    from traitlets.config import Config

    config = Config()

    def load_subconfig(path: str) -> None:
        jovial = config.JovialSpawner
        jovial.image, jovial.network_name, jovial.node_labels = IMAGE, "jovial-stock", {"jovial.fs": "lustre"}
        jovial.cpu_limit, jovial.mem_limit, jovial.start_timeout = 1.0, "2G", 120

    exec((REPO / "benchmarks" / "stock_hub_config.py").read_text(), {"load_subconfig": load_subconfig, "get_config": lambda: config})

    class User:
        name = escaped_name = "student01"
        id, url, base_url, settings, spawners, orm_user, server = 7, "/user/student01/", "/", {}, {}, None, None

    spawner = SwarmSpawner(
        config=config, user=User(), hub=Hub(ip="hub", port=8081, base_url="/hub/"), api_token="token",
        oauth_client_id="jupyterhub-user-student01",
    )
    await maybe_future(spawner.run_pre_spawn_hook())  # as the hub runs it before each start

    async def docker_call(method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "inspect_image":
            return {"Config": {"Cmd": ["jupyterhub-singleuser"], "Entrypoint": ["tini", "--"]}}
        (path, body), = sdk_bodies(lambda api: getattr(api, method)(*args, **kwargs))
        assert path == "/v1.41/services/create"
        raise _Sent(body)

    spawner.docker = docker_call
    with pytest.raises(_Sent) as sent:
        await spawner.create_object()
    return sent.value.args[0]


async def test_the_stock_benchmark_spawner_complies_with_its_own_proxy() -> None:
    body = await stock_service_body()
    assert body["Name"] == "stock-student01"
    assert isinstance(create(body, settings=STOCK_SETTINGS), Allowed), create(body, settings=STOCK_SETTINGS)
    # Its removal (by the service's ID, as stock does it) passes too.
    found = {"ID": "stockid0123", "Spec": {"Name": body["Name"], "Labels": body["Labels"]}}
    assert isinstance(remove("/v1.41/services/stockid0123", found, STOCK_SETTINGS), Allowed)
    # Jovial's own proxy refuses it: the prefix is the stock stack's only difference.
    refused = create(body, settings=settings_from_env({**ENV, "JOVIAL_NETWORK": "jovial-stock"}))
    assert isinstance(refused, Refused) and "'stock-student01' is not a user server's name" in refused.reason


# ---- the server: the real Docker SDK -> the proxy -> a fake engine on a Unix socket ----------------


class FakeEngine:
    """Answers like the engine for what the tests ask; records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.release_events = asyncio.Event()
        self.services = {"qboq15xn7ieqlrjyg8dmmhgnd": HUB_SERVICE, USER_SERVICE["ID"]: USER_SERVICE}
        self.configs: dict[str, Any] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path.removeprefix("/v1.41")
        self.requests.append((request.method, request.raw_path, body))
        if path == "/version":
            return web.json_response({"ApiVersion": "1.41", "Version": "20.10.24"})
        if path == "/_ping":
            return web.Response(text="OK", headers={"Api-Version": "1.41"})
        if path == "/events":
            response = web.StreamResponse()
            response.content_type = "application/json"
            await response.prepare(request)
            await response.write(b'{"Type":"service","Action":"create"}\n')
            await self.release_events.wait()  # the stream stays open until the test has read the first event
            await response.write(b'{"Type":"service","Action":"remove"}\n')
            await response.write_eof()
            return response
        if request.method == "POST" and path == "/configs/create":
            spec = json.loads(body)
            config_id = f"cfg{len(self.configs)}abcdef"
            self.configs[config_id] = {"ID": config_id, "Spec": spec}
            return web.json_response({"ID": config_id}, status=201)
        if request.method == "POST" and path == "/services/create":
            return web.json_response({"ID": "newservice0000000000000000"}, status=201)
        kind, _, key = path[1:].partition("/")
        table = {"services": self.services, "configs": self.configs}.get(kind, {})
        found = next((o for o in table.values() if key in (o["ID"], o["Spec"]["Name"])), None)
        if found is None:
            return web.json_response({"message": f"{kind[:-1]} {key} not found"}, status=404)
        if request.method == "DELETE":
            return web.Response(status=200)
        return web.json_response(found)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[tuple[FakeEngine, int, int]]:
    """A fake engine on a Unix socket and the proxy in front of it: (engine, proxy port, counters port)."""
    engine = FakeEngine()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", engine.handle)
    engine_runner = web.AppRunner(app)
    await engine_runner.setup()
    socket_path = str(tmp_path / "docker.sock")
    await web.UnixSite(engine_runner, socket_path).start()
    port, counters_port = _free_port(), _free_port()
    runners = await server.start(SETTINGS, socket_path, "127.0.0.1", port, counters_port)
    try:
        yield engine, port, counters_port
    finally:
        engine.release_events.set()
        for runner in runners:
            await runner.cleanup()
        await engine_runner.cleanup()


def _client(port: int, version: str = "1.41") -> docker.APIClient:
    return docker.APIClient(base_url=f"tcp://127.0.0.1:{port}", version=version, timeout=10)


async def test_the_hubs_calls_pass_through_the_proxy_and_hostile_ones_stop_there(
    proxied: tuple[FakeEngine, int, int], caplog: pytest.LogCaptureFixture
) -> None:
    engine, port, counters_port = proxied
    api = await asyncio.to_thread(_client, port, "auto")  # as the hub makes it: asks for /version
    assert api.api_version == "1.41"
    assert await asyncio.to_thread(api.ping)
    # What Jovial's launch does: configs, then the service referring to them.
    spec = tests.specs.server_spec(NAME)
    ids = {}
    for config in config_args(spec):
        ids[config.name] = (await asyncio.to_thread(api.create_config, config.name, config.data, labels=config.labels))["ID"]
    kwargs = service_args(spec, ids)
    assert (await asyncio.to_thread(api.create_service, **kwargs))["ID"] == "newservice0000000000000000"
    (created,) = [json.loads(body) for method, path, body in engine.requests if path == "/v1.41/services/create"]
    assert created["TaskTemplate"]["ContainerSpec"]["User"] == "19001:19001" and created["Name"] == NAME

    # A hostile create: 403, the rule in the message the SDK shows, a log line, nothing reaches the engine.
    seen = len(engine.requests)
    hostile = copy.deepcopy(kwargs)
    hostile["task_template"]["ContainerSpec"]["Mounts"].append(docker.types.Mount("/host", "/", type="bind"))
    with caplog.at_level(logging.WARNING, logger="jovial.docker-proxy"), pytest.raises(APIError) as refused:
        await asyncio.to_thread(api.create_service, **hostile)
    assert refused.value.status_code == 403
    assert "Mounts[1].Source '/' is outside the shared filesystem root" in refused.value.explanation
    assert any(
        "refused POST /v1.41/services/create" in r.getMessage() and "outside the shared filesystem root" in r.getMessage()
        for r in caplog.records
    )
    assert engine.requests[seen:] == []

    # Removals: the stack's hub is refused after a look, never deleted; a server goes by its ID.
    with pytest.raises(APIError) as refused:
        await asyncio.to_thread(api.remove_service, "jovial_hub")
    assert refused.value.status_code == 403 and "'jovial_hub' is not named like one" in refused.value.explanation
    await asyncio.to_thread(api.remove_service, NAME)
    with pytest.raises(NotFound):
        await asyncio.to_thread(api.remove_service, "jupyter-nobody")
    deletes = [path for method, path, _ in engine.requests if method == "DELETE"]
    assert deletes == [f"/v1.41/services/{USER_SERVICE['ID']}"]

    # Everything else: 403 with a message, as before.
    with pytest.raises(APIError) as refused:
        await asyncio.to_thread(api.containers)
    assert refused.value.status_code == 403 and "not one of the reads" in refused.value.explanation

    async def counters() -> dict[str, int]:
        import aiohttp

        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{counters_port}/counters") as reply:
            return await reply.json()

    # /version, _ping, 2 configs, the service, its removal; 3 refusals; 1 not found (lookups not counted).
    assert await counters() == {"requests": 10, "allowed": 6, "refused": 3, "not_found": 1, "errors": 0}


async def test_the_event_stream_streams(proxied: tuple[FakeEngine, int, int]) -> None:
    engine, port, _ = proxied
    api = _client(port)
    events = await asyncio.to_thread(api.events, decode=True)
    # The first event arrives while the engine still holds the stream open: nothing is buffered.
    assert await asyncio.wait_for(asyncio.to_thread(next, events), 10) == {"Type": "service", "Action": "create"}
    assert not engine.release_events.is_set()
    engine.release_events.set()
    assert await asyncio.wait_for(asyncio.to_thread(next, events), 10) == {"Type": "service", "Action": "remove"}
    events.close()
