"""Smoke test of the 3-node swarm that `swarm/cluster up` makes on this machine (conftest.py).

Checks: the hub answers through the cluster's proxy from the host; three Ready nodes, only the
workers labelled for the shared filesystem; the stack's services on the manager and the anchor
on every worker; one user server spawned through the cluster's hub runs on a worker and answers
through the proxy. It crashes nothing: test_node_loss.py does that.
"""

from collections.abc import Iterator

import docker
import pytest
import requests

from tests.cluster.conftest import Cluster
from tests.hub import SMALL, remove_servers_of

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def facts(cluster: Cluster) -> dict[str, str]:
    return cluster.facts


@pytest.fixture(scope="module")
def manager(cluster: Cluster) -> Iterator[docker.DockerClient]:
    client = cluster.manager()
    yield client
    client.close()


def hostnames(client: docker.DockerClient) -> dict[str, str]:
    return {node.id: node.attrs["Description"]["Hostname"] for node in client.nodes.list()}


def running_where(client: docker.DockerClient) -> dict[str, set[str]]:
    """Service name -> the nodes its running tasks are on."""
    names = {service.id: service.name for service in client.services.list()}
    nodes = hostnames(client)
    placed: dict[str, set[str]] = {}
    for task in client.api.tasks(filters={"desired-state": "running"}):
        if task["Status"]["State"] == "running":
            placed.setdefault(names.get(task["ServiceID"], "?"), set()).add(nodes[task["NodeID"]])
    return placed


def test_the_hub_answers_through_the_proxy_from_the_host(facts: dict[str, str]) -> None:
    assert requests.get(facts["JOVIAL_CLUSTER_URL"] + "hub/health", timeout=5).status_code == 200


def test_three_ready_nodes_and_only_the_workers_labelled(facts: dict[str, str], manager: docker.DockerClient) -> None:
    workers = set(facts["JOVIAL_CLUSTER_WORKERS"].split(","))
    nodes = {node.attrs["Description"]["Hostname"]: node.attrs for node in manager.nodes.list()}
    assert set(nodes) == set(facts["JOVIAL_CLUSTER_NODES"].split(","))
    for name, node in nodes.items():
        assert node["Status"]["State"] == "ready", name
        assert (node["Spec"].get("Labels", {}).get("jovial.fs") == "lustre") == (name in workers), name


def test_the_stack_runs_on_the_manager_and_the_anchor_on_every_worker(facts: dict[str, str], manager: docker.DockerClient) -> None:
    stack, boss = facts["JOVIAL_CLUSTER_STACK"], facts["JOVIAL_CLUSTER_MANAGER"]
    placed = running_where(manager)
    for service in ("hub", "proxy", "docker-proxy", "ldap"):
        assert placed.get(f"{stack}_{service}") == {boss}, service
    assert placed.get(f"{stack}_anchor") == set(facts["JOVIAL_CLUSTER_WORKERS"].split(","))


def test_a_spawned_server_runs_on_a_worker_and_answers_through_the_proxy(
    cluster: Cluster, facts: dict[str, str], manager: docker.DockerClient
) -> None:
    user = cluster.user("carol")
    try:
        user.start(SMALL)
        user.wait_ready(120)
        assert user.server_answers()
        (service,) = manager.services.list(filters={"label": "jovial.user=carol"})
        (task,) = [t for t in service.tasks({"desired-state": "running"}) if t["Status"]["State"] == "running"]
        assert hostnames(manager)[task["NodeID"]] in facts["JOVIAL_CLUSTER_WORKERS"].split(",")
    finally:
        try:
            user.stop()
        finally:
            remove_servers_of("carol", client=manager)
