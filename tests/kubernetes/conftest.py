"""Fixtures of the Kubernetes tests that talk to the fake API server (tests/kubernetes/fake_apiserver.py):
a fake API server with a fake scheduler/kubelet in front of it, and KubernetesBackends talking to it."""

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from jovial.backends.kubernetes import KubernetesBackend
from jovial.backends.probe import Probe
from tests.kubernetes.fake_apiserver import FakeApiServer
from tests.kubernetes.fake_kubelet import FakeKubelet, Node
from tests.kubernetes.matrix import EXTENDED_RESOURCES, SITE

NAMESPACE = "jovial-users"
LOG = logging.getLogger("jovial.tests.kubernetes")
SITE_DIRS = {"/lustre/home/alice", "/lustre/home/bob", "/lustre/data/sdss-dr17", "/lustre/data/gaia-dr3", "/lustre/projects/astro"}
NODES = (
    ("node-1", {"jovial.fs": "lustre"}, {"cpu": 4, "memory": 16 * 2**30}),
    ("gpu-1", {"jovial.fs": "lustre", "gpu": "true"}, {"cpu": 8, "memory": 64 * 2**30, "nvidia.com/gpu": 2}),
    ("login-1", {}, {"cpu": 64, "memory": 256 * 2**30}),
)


@dataclass
class FakeCluster:
    """The fake API server and the fake scheduler/kubelet writing into it."""

    api: FakeApiServer
    kubelet: FakeKubelet

    def left(self) -> dict[str, list[str]]:
        """Names of every object still stored, by kind (events aside)."""
        return {kind: sorted(name for _, name in objs) for kind, objs in self.api.objects.items() if kind != "events" and objs}


@pytest.fixture
async def make_cluster() -> AsyncIterator[Callable[..., FakeCluster]]:
    made: list[FakeCluster] = []

    def make(**kubelet_options: object) -> FakeCluster:
        api = FakeApiServer()
        nodes = [Node(name, labels, allocatable, host_dirs=set(SITE_DIRS)) for name, labels, allocatable in NODES]
        made.append(FakeCluster(api, FakeKubelet(api, nodes, registry={SITE.image}, **kubelet_options)))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for cluster in made:
        await cluster.kubelet.close()
        await cluster.api.close()


@pytest.fixture
async def cluster(make_cluster: Callable[..., FakeCluster]) -> FakeCluster:
    made = make_cluster()
    await made.api.start()
    return made


@pytest.fixture
async def make_backend() -> AsyncIterator[Callable[..., KubernetesBackend]]:
    """KubernetesBackends (each as one hub process has) talking to a fake API server; closed afterwards."""
    made: list[KubernetesBackend] = []

    def make(cluster: FakeCluster, probe: Probe | None = None) -> KubernetesBackend:
        client = ApiClient(Configuration(host=cluster.api.url))
        made.append(KubernetesBackend(client, NAMESPACE, LOG, EXTENDED_RESOURCES, probe))
        return made[-1]

    yield make
    for backend in made:
        await backend.close()
