"""The Kubernetes backend on a real cluster: the scenarios of the Swarm integration tests.

Runs whenever KUBECONFIG is set (and is skipped, saying so, when it is not: no cluster can run
on the machines this project is developed on). Needs, in the kubeconfig's current context:
- a namespace (JOVIAL_K8S_NAMESPACE, default: the context's) where the credentials may manage
  pods, services and configmaps and read events (stacks/kubernetes/rbac.yaml), and whose Pod
  Security level allows hostPath volumes;
- an image with sh, id and python3 that the nodes can pull (JOVIAL_K8S_IMAGE, default python:3.12-slim);
- a directory present on every node that uid 19001 may write (JOVIAL_K8S_HOST_DIR, default /tmp):
  it stands in for the shared filesystem (the home, and read-only data);
- optionally node labels to place servers with (JOVIAL_K8S_NODE_LABELS, e.g. "jovial.fs=lustre").
Each test removes what it made, also when it fails.
"""

import dataclasses
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator

import pytest

from jovial.errors import LaunchError
from jovial.identity import identity_from_mapping
from jovial.spec import DataCollection, ResourceSpec, ServerSpec, SiteSettings, build_server_spec
from tests.kubernetes.matrix import EXTENDED_RESOURCES

pytestmark = [
    pytest.mark.kubernetes,
    pytest.mark.skipif(
        not os.environ.get("KUBECONFIG"),
        reason="KUBECONFIG is not set: the real-cluster suite needs a Kubernetes cluster (see this file's docstring)",
    ),
]

LOG = logging.getLogger("jovial.tests.kubernetes.real")
HOST_DIR = os.environ.get("JOVIAL_K8S_HOST_DIR", "/tmp")
IMAGE = os.environ.get("JOVIAL_K8S_IMAGE", "python:3.12-slim")
NODE_LABELS = dict(p.split("=", 1) for p in os.environ.get("JOVIAL_K8S_NODE_LABELS", "").split(",") if p)
TEST_USER, TEST_UID, TEST_GROUP_GID = "jovial-test", 19001, 19002
FAILS_WITHIN = 60  # seconds: a real cluster's scheduler, kubelet and registry answer within this
START_WITHIN = 300  # seconds: the first pull of the image may take a while
SERVE = ("python3", "-m", "http.server", "8888", "--bind", "0.0.0.0")

SITE = SiteSettings(
    image=IMAGE,
    network="",
    port=8888,
    home_source_template=HOST_DIR,
    home_target_template="/home/{username}",
    node_labels=NODE_LABELS,
    resources=ResourceSpec(cpu_limit=0.5, mem_limit=256 * 2**20),
)


def server_spec(command: tuple[str, ...] = SERVE, **site_changes: object) -> ServerSpec:
    site = dataclasses.replace(SITE, **site_changes)
    identity = identity_from_mapping(TEST_USER, {"uid": TEST_UID, "gid": TEST_UID, "groups": {"testers": TEST_GROUP_GID}})
    name = f"jupyter-jovial-k8s-test-{secrets.token_hex(3)}"
    return build_server_spec(site, identity, name, "", {"JUPYTERHUB_USER": TEST_USER}, command)


@pytest.fixture
async def backend() -> AsyncIterator:
    from jovial.backends.kubernetes import KubernetesBackend, connect

    client, namespace = await connect()
    made = KubernetesBackend(client, os.environ.get("JOVIAL_K8S_NAMESPACE") or namespace, LOG, EXTENDED_RESOURCES)
    yield made
    await made.close()


async def left(backend, name: str) -> list[str]:
    """Objects labelled for server `name` still in the namespace (pods being deleted included)."""
    selector = f"jovial.object={name}"
    found = []
    for kind, call in (("pod", backend.api.list_namespaced_pod), ("service", backend.api.list_namespaced_service),
                       ("configmap", backend.api.list_namespaced_config_map)):
        found += [f"{kind}/{o.metadata.name}" for o in (await call(backend.namespace, label_selector=selector)).items]
    return found


async def fails_fast(backend, spec: ServerSpec) -> str:
    started = time.monotonic()
    await backend.launch(spec)
    try:
        with pytest.raises(LaunchError) as failure:
            await backend.wait_running(spec, lambda m, p: None, timeout=START_WITHIN)
        assert time.monotonic() - started < FAILS_WITHIN
    finally:
        await backend.remove(spec.name, spec.owner)
    assert await left(backend, spec.name) == []
    return failure.value.jupyterhub_message


async def test_a_server_runs_as_the_user_with_its_mounts_and_is_removed_entirely(backend) -> None:
    script = (
        "id -u; id -G; id -un; echo ok > $HOME/.jovial-k8s-test && echo home-writable; "
        "touch /data/ro/jovial-k8s-test 2>/dev/null || echo data-read-only; "
        "echo s > /scratch/s && grep -c ' /scratch ' /proc/mounts; grep -c NoNewPrivs:.1 /proc/self/status; "
        "exec " + " ".join(SERVE)
    )
    spec = server_spec(
        ("sh", "-c", script),
        data_collections=(DataCollection(HOST_DIR, "/data/ro"),),
        scratch_bytes=16 * 2**20,
    )
    reports: list[tuple[str, int]] = []
    await backend.launch(spec)
    try:
        ip, port = await backend.wait_running(spec, lambda m, p: reports.append((m, p)), timeout=START_WITHIN)
        assert port == 8888 and ip
        assert reports[0][1] < reports[-1][1] and "running" in reports[-1][0]
        assert (await backend.status(spec.name, spec.owner)).address == ip
        output = await backend.api.read_namespaced_pod_log(spec.name, backend.namespace, container="notebook")
        lines = output.split()
        assert lines[:6] == [str(TEST_UID), str(TEST_UID), str(TEST_GROUP_GID), TEST_USER, "home-writable", "data-read-only"]
        assert lines[6:8] == ["1", "1"]  # scratch mounted; no new privileges
    finally:
        await backend.remove(spec.name, spec.owner)
    assert await left(backend, spec.name) == []
    assert not (await backend.status(spec.name, spec.owner)).alive


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"node_labels": {"jovial.fs": "nowhere-jovial-test"}}, "No node of the cluster can run your server"),
        ({"resources": ResourceSpec(cpu_limit=1024.0, cpu_reservation=1024.0)}, "Insufficient cpu"),
        ({"data_collections": (DataCollection("/nonexistent-jovial-test", "/data/x"),)},
         "The folder /nonexistent-jovial-test that your server needs is missing on node"),
        ({"image": "registry.invalid/jovial/no-such-image:none"}, "The image registry.invalid/jovial/no-such-image:none cannot be pulled"),
    ],
    ids=["no-node-with-the-labels", "no-node-with-the-cpu", "host-path-missing", "image-missing"],
)
async def test_a_server_that_can_never_run_fails_fast_and_leaves_nothing(backend, changes: dict, expected: str) -> None:
    assert expected in await fails_fast(backend, server_spec(**changes))


async def test_a_server_that_exits_at_start_fails_with_its_last_words(backend) -> None:
    message = await fails_fast(backend, server_spec(("sh", "-c", "echo 'cannot find my config' >&2; exit 3")))
    assert "stopped right after starting (exit code 3)" in message and "cannot find my config" in message


async def test_a_restarted_hub_finds_the_server_and_a_respawn_gets_the_name_again(backend) -> None:
    from jovial.backends.kubernetes import KubernetesBackend, connect

    spec = server_spec()
    await backend.launch(spec)
    try:
        ip, _ = await backend.wait_running(spec, lambda m, p: None, timeout=START_WITHIN)
        client, _ = await connect()
        restarted = KubernetesBackend(client, backend.namespace, LOG, EXTENDED_RESOURCES)
        try:
            found = await restarted.status(spec.name, spec.owner)
            assert found.alive and found.address == ip
            await restarted.remove(spec.name, spec.owner)
        finally:
            await restarted.close()
        await backend.launch(spec)  # the name is free again at once
        await backend.wait_running(spec, lambda m, p: None, timeout=START_WITHIN)
    finally:
        await backend.remove(spec.name, spec.owner)
    assert await left(backend, spec.name) == []
