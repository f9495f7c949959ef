"""Switching JovialSpawner to Kubernetes is one setting: settings an orchestrator cannot honour
are refused at hub start, naming it; and the same spawner, configured as for Swarm plus
`orchestrator = 'kubernetes'`, starts, polls and stops a server and cleans up after a failed start.

The spawner reaches the API through a KUBECONFIG that points at the fake API server of
tests/kubernetes/fake_apiserver.py on 127.0.0.1: THIS IS NOT A CLUSTER (see test_api_conversation.py).
"""

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from jovial.backends.kubernetes import KubernetesBackend
from jovial.backends.kubernetes.client import POD_GONE
from jovial.errors import LaunchError
from jovial.spawner import JovialSpawner
from tests.kubernetes.conftest import NAMESPACE, FakeCluster
from tests.kubernetes.matrix import SITE, spec
from tests.restored_hub import check, record_running


def config_of(**settings: object) -> Config:
    config = Config()
    for key, value in settings.items():
        section, _, name = key.rpartition("__")
        config[section or "JovialSpawner"][name] = value
    return config


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"orchestrator": "kubernetes", "network_name": "jovial"}, "on Kubernetes: JovialSpawner.network_name (use nothing: pods share"),
        ({"orchestrator": "kubernetes", "watch_interval": 2.0}, "on Kubernetes: JovialSpawner.watch_interval"),
        ({"orchestrator": "kubernetes", "SwarmSpawner__tls_verify": True}, "on Kubernetes: SwarmSpawner.tls_verify"),
        ({"orchestrator": "kubernetes", "volumes": {"/a": "/b"}}, "on Kubernetes: JovialSpawner.volumes"),
        ({"orchestrator": "kubernetes", "profiles": [{"name": "fpga", "generic_resources": {"FPGA": 1}}]},
         "on Kubernetes: generic_resources 'FPGA' (use a Kubernetes name for it in kubernetes_extended_resources"),
        ({"kubernetes_namespace": "jovial-users"}, "on Docker Swarm: JovialSpawner.kubernetes_namespace"),
        ({"kubernetes_extended_resources": {"FPGA": "example.com/fpga"}}, "on Docker Swarm: JovialSpawner.kubernetes_extended_resources"),
        ({"orchestrator": "nomad"}, "orchestrator must be one of \\['kubernetes', 'swarm'\\], not 'nomad'"),
    ],
)
def test_settings_the_orchestrator_cannot_honour_are_refused_at_hub_start_naming_it(settings: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)") if "[" not in named else named):
        JovialSpawner.check_config(config_of(**settings))


def test_the_same_settings_are_accepted_on_either_orchestrator() -> None:
    site = {
        "image": SITE.image, "cpu_limit": 2.0, "mem_limit": "4G", "node_labels": {"jovial.fs": "lustre"},
        "profiles": [{"name": "gpu", "generic_resources": {"NVIDIA-GPU": 1}}],
        "group_settings": {"fpga-users": {"generic_resources": {"FPGA": 1}}},
    }
    JovialSpawner.check_config(config_of(**site))
    extended = {"NVIDIA-GPU": "nvidia.com/gpu", "FPGA": "example.com/fpga"}
    JovialSpawner.check_config(config_of(orchestrator="kubernetes", kubernetes_extended_resources=extended, **site))


@pytest.fixture
def kubeconfig(tmp_path: Path, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A KUBECONFIG whose current context is the fake API server, namespace jovial-users."""
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": cluster.api.url}}],
        "users": [{"name": "fake", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": NAMESPACE}}],
    }))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return path


@pytest.fixture
async def make_spawner(tmp_path: Path, cluster: FakeCluster, kubeconfig: Path):
    made: list[JovialSpawner] = []
    fs_root = tmp_path / "lustre"
    (fs_root / "home").mkdir(parents=True)
    for node in cluster.kubelet.nodes:
        node.host_dirs.add(f"{fs_root}/home/astro1")

    def make(username: str = "astro1", hub_users: dict | None = None, **settings: object) -> JovialSpawner:
        """A spawner of `username`'s default server; with `hub_users`, one of that hub's (its
        tornado settings' "users", which the spawner's user joins)."""
        config = config_of(**{
            "orchestrator": "kubernetes",
            "identities": {"astro1": {"uid": 10501, "gid": 10501, "groups": {"astro": 20001}}},
            "ldap_url": "",
            "shared_fs_root": str(fs_root),
            "home_path_template": f"{fs_root}/home/{{username}}",
            "image": SITE.image,
            "cpu_limit": 2.0,
            "mem_limit": "4G",
            "check_server_port": False,  # the pods' addresses are made up by the fake kubelet
            **settings,
        })
        user = SimpleNamespace(name=username, escaped_name=username, url=f"/user/{username}/", server=None, spawners={})
        if hub_users is not None:
            user.settings = {"users": hub_users}
            hub_users[len(hub_users) + 1] = user
        hub = SimpleNamespace(public_host="", api_url="http://hub:8081/hub/api", base_url="/hub/")
        made.append(JovialSpawner(config=config, user=user, hub=hub, _deprecated_db_session=None, api_token="test-token"))
        user.spawners[""] = made[-1]
        return made[-1]

    yield make
    sweep = JovialSpawner._sweeps.pop("kubernetes", None)
    if sweep is not None:
        sweep.cancel()
    backend = JovialSpawner._backends.pop("kubernetes", None)
    if backend is not None:
        await backend.close()


async def test_one_setting_moves_the_spawner_to_kubernetes(make_spawner, cluster: FakeCluster) -> None:
    spawner = make_spawner()
    ip, port = await spawner.start()
    backend = await spawner.backend()
    assert isinstance(backend, KubernetesBackend) and backend.namespace == NAMESPACE
    pod = cluster.api.get("pods", NAMESPACE, "jupyter-astro1")
    assert (ip, port) == (pod["status"]["podIP"], 8888) and spawner.object_id == pod["metadata"]["uid"]
    security = pod["spec"]["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"], security["supplementalGroups"]) == (10501, 10501, [20001])
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "2000m", "memory": str(4 * 2**30)}
    assert pod["spec"]["nodeSelector"] == {"jovial.fs": "lustre"}
    assert [e["progress"] for e in spawner._events] == sorted(e["progress"] for e in spawner._events)
    assert await spawner.poll() is None
    await spawner.stop()
    assert cluster.left() == {} and await spawner.poll() == 0


async def test_a_failed_start_on_kubernetes_leaves_nothing_behind(make_spawner, cluster: FakeCluster) -> None:
    spawner = make_spawner(image="registry.example.org/jovial/missing:1")
    started = time.monotonic()
    with pytest.raises(LaunchError, match="The image registry.example.org/jovial/missing:1 cannot be pulled on node node-1"):
        await spawner.start()
    assert time.monotonic() - started < 5
    assert cluster.left() == {} and spawner.object_id == ""


async def test_a_server_that_ends_by_itself_is_noticed_at_once_removed_and_explained(make_spawner, cluster: FakeCluster) -> None:
    spawner = make_spawner()
    await spawner.start()
    stopped = asyncio.Event()
    spawner.add_poll_callback(stopped.set)  # what the hub registers: its "server stopped" handling
    spawner.poll_interval = 3600  # the hub's periodic poll cannot be what notices it
    spawner.start_polling()
    cluster.api.remove("pods", NAMESPACE, "jupyter-astro1")  # behind the hub's back
    await asyncio.wait_for(stopped.wait(), 5)
    assert spawner.last_end.startswith("Your previous server stopped at ") and POD_GONE in spawner.last_end
    assert cluster.left() == {} and spawner.object_id == ""  # its Service and ConfigMap are removed too
    assert await spawner.poll() == spawner.last_end

    after_restart = make_spawner()  # a restarted hub loads the state the hub saved
    after_restart.load_state(spawner.get_state())
    assert after_restart.last_end == spawner.last_end
    await after_restart.start()
    assert after_restart._events[0] == {"progress": 5, "message": spawner.last_end}
    assert after_restart.last_end == "" and "last_end" not in after_restart.get_state()
    await after_restart.stop()


async def test_after_a_hub_restart_mid_spawn_the_orphan_pod_goes_and_the_running_server_stays(make_spawner, make_backend, cluster) -> None:
    """The old hub made alice's server (running, recorded) and bob's (his spawn, interrupted by the
    restart: no object id saved). The new hub's checks keep alice's and mark bob's stopped; then the
    sweep removes bob's Pod, Service and ConfigMap, and nothing of alice's."""
    old_hub = make_backend(cluster)
    running, interrupted = spec("alice"), spec("bob")
    for server in (running, interrupted):
        await old_hub.launch(server)
    await asyncio.gather(*(old_hub.wait_running(s, lambda m, p: None, 30) for s in (running, interrupted)))
    pod_uid = cluster.api.get("pods", NAMESPACE, running.name)["metadata"]["uid"]
    await old_hub.close()

    users: dict = {}
    alice, bob = make_spawner("alice", users), make_spawner("bob", users)
    alice.load_state({"object_id": pod_uid, "object_name": running.name})
    for restored in (alice, bob):
        record_running(restored)
        restored._check_pending = True
    await check(bob)
    await check(alice)
    assert alice.server is not None and bob.server is None
    await asyncio.wait_for(JovialSpawner._sweeps["kubernetes"], 10)
    assert cluster.left() == {"configmaps": ["jupyter-alice-files"], "pods": ["jupyter-alice"], "services": ["jupyter-alice"]}
