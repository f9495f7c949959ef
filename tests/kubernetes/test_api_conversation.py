"""The Kubernetes backend's conversation with an API server.

THIS IS NOT A CLUSTER. No Kubernetes API server can run on these machines, so the backend talks,
through the real kubernetes_asyncio client over HTTP, to a fake API server on 127.0.0.1
(`fake_apiserver.py`: the REST API for pods, services, configmaps and events, with watches,
resourceVersions, 404/409/410) into which a fake scheduler and kubelet (`fake_kubelet.py`) write
what real ones would. Only the API server (and what writes into it) is faked; the backend, its
builder, watcher and readers are the real code. What a real cluster does is checked by
tests/kubernetes/test_real_cluster.py, which runs whenever KUBECONFIG is set.
"""

import asyncio
import time
from collections.abc import Callable

import pytest

from jovial.backends.kubernetes import KubernetesBackend
from jovial.backends.kubernetes.client import POD_GONE
from jovial.backends.probe import port_answers
from jovial.errors import LaunchError
from jovial.spec import DataCollection, ResourceSpec, ServerOwner, ServerSpec
from tests.kubernetes.conftest import NAMESPACE, FakeCluster
from tests.kubernetes.matrix import PROFILES, spec

FAILS_WITHIN = 5.0  # seconds: "within seconds", far below any start timeout; not a benchmark
Reports = list[tuple[str, int]]


def recorder() -> tuple[Reports, Callable[[str, int], None]]:
    reports: Reports = []
    return reports, lambda message, percent: reports.append((message, percent))


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def fails_fast(backend: KubernetesBackend, cluster: FakeCluster, server: ServerSpec) -> str:
    """Launch, expect LaunchError within seconds, remove; check nothing is left. The error text."""
    started = time.monotonic()
    await backend.launch(server)
    try:
        with pytest.raises(LaunchError) as failure:
            await backend.wait_running(server, lambda m, p: None, timeout=60)
        assert time.monotonic() - started < FAILS_WITHIN
    finally:
        await backend.remove(server.name, server.owner)
    assert cluster.left() == {}
    return failure.value.jupyterhub_message


async def test_a_server_starts_step_by_step_and_its_objects_are_the_builders(make_cluster, make_backend) -> None:
    cluster = make_cluster(manual=True)
    await cluster.api.start()
    backend = make_backend(cluster)
    server = spec()
    uid = await backend.launch(server)
    pod = cluster.api.get("pods", NAMESPACE, "jupyter-alice")
    assert pod["metadata"]["uid"] == uid and pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert cluster.left() == {"configmaps": ["jupyter-alice-files"], "pods": ["jupyter-alice"], "services": ["jupyter-alice"]}

    reports, report = recorder()
    waiting = asyncio.create_task(backend.wait_running(server, report, timeout=30))
    await until(lambda: len(reports) == 1)
    for steps, expected in ((1, 2), (2, 3), (1, 4), (1, 5)):  # schedule; mount + start pulling; pulled; run
        cluster.kubelet.advance(steps)
        await until(lambda n=expected: len(reports) == n)
    assert await waiting == ("10.244.0.11", 8888)
    assert reports == [
        ("Waiting for the cluster to place your server", 35),
        ("Your server is assigned to node node-1", 45),
        ("Pulling the image of your server on node node-1", 60),
        ("Creating your server on node node-1 (the image is ready)", 70),
        ("Your server is running on node node-1; waiting for it to answer", 85),
    ]


async def test_status_is_read_from_the_watchers_memory_without_an_api_call(cluster, make_backend) -> None:
    backend = make_backend(cluster)
    servers = [spec("alice"), spec("bob")]
    for server in servers:
        await backend.launch(server)
    addresses = await asyncio.gather(*(backend.wait_running(s, lambda m, p: None, 30) for s in servers))
    before = cluster.api.calls.copy()
    for _ in range(50):
        statuses = [await backend.status(s.name, s.owner) for s in servers]
    assert cluster.api.calls == before
    assert [(s.alive, s.address) for s in statuses] == [(True, ip) for ip, _ in addresses]
    assert not (await backend.status("jupyter-nobody", ServerOwner("nobody", ""))).alive


async def test_the_hub_waits_until_the_port_answers(make_cluster, make_backend) -> None:
    """With the probe, a running pod is started only once its port answers (a real socket here)."""
    cluster = make_cluster(pod_ip="127.0.0.1")
    await cluster.api.start()
    server_socket = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server_socket.sockets[0].getsockname()[1]
    server_socket.close()
    await server_socket.wait_closed()
    backend = make_backend(cluster, probe=port_answers)
    server = spec(port=port)
    await backend.launch(server)
    reports, report = recorder()
    waiting = asyncio.create_task(backend.wait_running(server, report, timeout=30))
    await until(lambda: any(p == 85 for _, p in reports))
    await asyncio.sleep(0.6)
    assert not waiting.done()  # running, but nothing listens yet
    listening = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        assert await asyncio.wait_for(waiting, 5) == ("127.0.0.1", port)
        assert reports[-1] == ("Your server answers", 95)
    finally:
        listening.close()
        await listening.wait_closed()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"node_labels": {"jovial.fs": "nowhere"}},
         "No node of the cluster can run your server: 0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."),
        ({"resources": ResourceSpec(cpu_limit=128.0, cpu_reservation=100.0)},
         "No node of the cluster can run your server: 0/3 nodes are available: 2 Insufficient cpu, "
         "1 node(s) didn't match Pod's node affinity/selector."),
        ({"resources": ResourceSpec(generic=(("NVIDIA-GPU", 4),)), "node_labels": {"jovial.fs": "lustre", "gpu": "true"}},
         "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node affinity/selector."),
        ({"image": "registry.example.org/no-such-image:1"},
         "The image registry.example.org/no-such-image:1 cannot be pulled on node node-1: ErrImagePull: rpc error: code = NotFound"),
        ({"image": "Not A Valid/Image"}, "The image Not A Valid/Image cannot be pulled on node node-1: InvalidImageName"),
        ({"data_collections": (DataCollection("/lustre/data/not-there", "/data/x"),)},
         "The folder /lustre/data/not-there that your server needs is missing on node node-1."),
    ],
    ids=["no-node-with-the-labels", "no-node-with-the-cpu", "no-node-with-the-gpus",
         "image-missing", "image-name-invalid", "host-path-missing"],
)
async def test_a_server_that_can_never_run_fails_fast_with_the_reason_and_leaves_nothing(
    cluster, make_backend, changes: dict, expected: str
) -> None:
    message = await fails_fast(make_backend(cluster), cluster, spec(**changes))
    assert expected in message


async def test_a_gpu_profile_lands_on_the_node_with_gpus(cluster, make_backend) -> None:
    backend = make_backend(cluster)
    server = spec(resources=PROFILES["gpu"])
    await backend.launch(server)
    reports, report = recorder()
    await backend.wait_running(server, report, 30)
    assert reports[-1][0] == "Your server is running on node gpu-1; waiting for it to answer"


async def test_a_server_that_crashes_at_start_fails_with_its_exit_code_and_last_output(cluster, make_backend) -> None:
    cluster.kubelet.exits["jupyter-alice"] = (3, "Traceback ...\nValueError: cannot find my config")
    message = await fails_fast(make_backend(cluster), cluster, spec())
    assert message.startswith("Your server stopped right after starting (exit code 3).")
    assert message.endswith("Its last output:\nTraceback ...\nValueError: cannot find my config")


async def test_a_start_that_takes_too_long_fails_at_the_timeout_with_the_last_step(make_cluster, make_backend) -> None:
    cluster = make_cluster(manual=True)
    await cluster.api.start()
    backend = make_backend(cluster)
    server = spec()
    await backend.launch(server)
    with pytest.raises(LaunchError, match="did not start within 1 seconds; last step: Waiting for the cluster to place your server"):
        await backend.wait_running(server, lambda m, p: None, timeout=1)
    await backend.remove(server.name, server.owner)
    assert cluster.left() == {}


async def test_a_pod_deleted_while_starting_fails_the_start(make_cluster, make_backend) -> None:
    cluster = make_cluster(manual=True)
    await cluster.api.start()
    backend = make_backend(cluster)
    server = spec()
    await backend.launch(server)
    waiting = asyncio.create_task(backend.wait_running(server, lambda m, p: None, timeout=30))
    await asyncio.sleep(0.2)
    cluster.api.remove("pods", NAMESPACE, server.name)
    with pytest.raises(LaunchError, match="Your server's pod was removed while it was starting"):
        await waiting


@pytest.mark.parametrize("failing", ["services", "pods"])
async def test_launch_makes_everything_or_nothing(cluster, make_backend, failing: str) -> None:
    cluster.api.fail_next("POST", failing, 403, f'{failing} "jupyter-alice" is forbidden: exceeded quota: jovial-users')
    backend = make_backend(cluster)
    kind = {"services": "Service", "pods": "Pod"}[failing]
    with pytest.raises(LaunchError, match=f"The cluster refused to create your server's {kind}: .*exceeded quota"):
        await backend.launch(spec())
    assert cluster.left() == {}


async def test_an_object_left_by_someone_else_is_a_clear_409_and_is_not_touched(cluster, make_backend) -> None:
    cluster.api.put("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "jupyter-alice", "namespace": NAMESPACE}})
    with pytest.raises(LaunchError, match='Service: services "jupyter-alice" already exists'):
        await make_backend(cluster).launch(spec())
    assert cluster.left() == {"services": ["jupyter-alice"]}


async def test_remove_deletes_everything_waits_for_the_pod_and_the_name_is_free_again(cluster, make_backend) -> None:
    cluster.api.pod_deletion_delay = 0.3
    backend = make_backend(cluster)
    server = spec()
    await backend.launch(server)
    await backend.wait_running(server, lambda m, p: None, 30)
    await backend.remove(server.name, server.owner)
    assert cluster.left() == {}
    assert not (await backend.status(server.name, server.owner)).alive
    await backend.launch(server)  # a respawn under the same name: no 409
    assert (await backend.wait_running(server, lambda m, p: None, 30))[1] == 8888
    await backend.remove(server.name, server.owner)
    await backend.remove(server.name, server.owner)  # quiet when there is nothing left
    assert cluster.left() == {}


async def test_a_restarted_hub_finds_the_running_servers_on_its_first_list(cluster, make_backend) -> None:
    first = make_backend(cluster)
    servers = [spec("alice"), spec("bob", resources=PROFILES["large"])]
    for server in servers:
        await first.launch(server)
    addresses = [ip for ip, _ in await asyncio.gather(*(first.wait_running(s, lambda m, p: None, 30) for s in servers))]
    await first.close()

    restarted = make_backend(cluster)
    assert [(await restarted.status(s.name, s.owner)).address for s in servers] == addresses
    await restarted.remove(servers[0].name, servers[0].owner)
    assert cluster.left() == {k: ["jupyter-bob-files" if k == "configmaps" else "jupyter-bob"] for k in ("configmaps", "pods", "services")}


async def test_an_expired_watch_leads_to_a_fresh_list_and_later_changes_are_seen(cluster, make_backend, caplog) -> None:
    caplog.set_level("INFO", logger="jovial.tests.kubernetes")
    backend = make_backend(cluster)
    server = spec()
    await backend.launch(server)
    await backend.wait_running(server, lambda m, p: None, 30)
    lists = cluster.api.calls["GET pods"]
    cluster.api.compact()  # every resourceVersion so far is too old: the open watches get 410 Gone
    await until(lambda: cluster.api.calls["GET pods"] == lists + 1 and cluster.api.open_watches() == 2)
    assert "The watch of Kubernetes pods expired; listing them again" in caplog.text  # a resync, not an error
    assert "failed" not in caplog.text
    cluster.api.remove("pods", NAMESPACE, server.name)  # e.g. an operator's kubectl delete
    await until(lambda: server.name not in backend.watcher.state.pods)
    assert (await backend.status(server.name, server.owner)).reason == POD_GONE


async def test_after_the_connection_drops_the_watcher_lists_again_and_sees_what_it_missed(cluster, make_backend) -> None:
    backend = make_backend(cluster)
    servers = [spec("alice"), spec("bob")]
    for server in servers:
        await backend.launch(server)
    await asyncio.gather(*(backend.wait_running(s, lambda m, p: None, 30) for s in servers))
    lists = cluster.api.calls["GET pods"]
    cluster.api.drop_watches()
    cluster.api.compact()  # what happened while disconnected is not in any watch's history
    cluster.api.remove("pods", NAMESPACE, "jupyter-bob")
    await until(lambda: cluster.api.calls["GET pods"] > lists and cluster.api.open_watches() == 2)
    assert (await backend.status(servers[1].name, servers[1].owner)).reason == POD_GONE
    assert (await backend.status(servers[0].name, servers[0].owner)).alive


@pytest.mark.parametrize(
    "line",
    [b"this is not JSON", b'["not", "an", "event"]', b'{"type": "ADDED", "object": {"kind": "Pod"}}',
     b'{"type": "MODIFIED", "object": {"metadata": "not an object"}}'],
    ids=["not-json", "not-an-object", "a-pod-without-metadata", "metadata-not-an-object"],
)
async def test_a_watch_event_that_cannot_be_read_is_logged_and_following_goes_on(cluster, make_backend, caplog, line: bytes) -> None:
    backend = make_backend(cluster)
    server = spec()
    await backend.launch(server)
    await backend.wait_running(server, lambda m, p: None, 30)
    lists = cluster.api.calls["GET pods"]
    cluster.api.send_raw("pods", line)
    await until(lambda: cluster.api.calls["GET pods"] == lists + 1 and cluster.api.calls["GET pods watch"] >= 2)  # listed again at once
    assert "Skipping a Kubernetes pods watch event that cannot be read" in caplog.text
    cluster.api.remove("pods", NAMESPACE, server.name)  # a change after it is still seen
    await until(lambda: server.name not in backend.watcher.state.pods)
    assert (await backend.status(server.name, server.owner)).reason == POD_GONE
