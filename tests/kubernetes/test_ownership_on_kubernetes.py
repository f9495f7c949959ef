"""A name is not an owner, on Kubernetes too: the backend reads each Pod, Service and ConfigMap
before it deletes it, deletes only those Jovial made for that user's server (and exactly the object
it read: a uid precondition), leaves any other alone and says so; status does not take another's
pod for the server. Against the fake API server of tests/kubernetes/fake_apiserver.py: NOT a cluster."""

import pytest

from jovial.errors import NameTaken
from jovial.spec import ServerOwner
from tests.kubernetes.conftest import NAMESPACE, FakeCluster
from tests.kubernetes.matrix import spec
from tests.kubernetes.test_api_conversation import until

ALICE = ServerOwner("alice", "")


def foreign_pod(name: str, labels: dict[str, str], annotations: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels, "annotations": annotations},
            "spec": {"containers": []}, "status": {"phase": "Running"}}


async def test_a_service_of_the_servers_name_that_jovial_did_not_make_is_left_alone_with_a_clear_error(
    cluster: FakeCluster, make_backend, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.api.put("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "jupyter-alice", "namespace": NAMESPACE}})
    cluster.api.put("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "jupyter-alice-files", "namespace": NAMESPACE,
        "labels": {"jovial.managed": "true", "jovial.user": "alice", "jovial.server": ""},
        "annotations": {"jovial.user": "alice", "jovial.server": ""}}})  # hers, left by an earlier start
    with pytest.raises(NameTaken, match="A Service named jupyter-alice exists that Jovial did not make for you; ask an administrator."):
        await make_backend(cluster).remove("jupyter-alice", ALICE)
    assert cluster.left() == {"services": ["jupyter-alice"]}  # hers went, the site's stays
    assert "Not removing the Service jupyter-alice for user 'alice', server '': it does not carry Jovial's labels" in caplog.text


async def test_a_pod_of_the_servers_name_labelled_for_another_user_is_not_this_servers_and_stays(
    cluster: FakeCluster, make_backend
) -> None:
    bobs = {"jovial.managed": "true", "jovial.object": "jupyter-alice", "jovial.user": "bob", "jovial.server": ""}
    cluster.api.put("pods", foreign_pod("jupyter-alice", bobs, {"jovial.user": "bob", "jovial.server": ""}))
    backend = make_backend(cluster)
    status = await backend.status("jupyter-alice", ALICE)
    assert not status.alive and status.reason == "A Pod named jupyter-alice exists that Jovial did not make for you; ask an administrator."
    assert (await backend.status("jupyter-alice", ServerOwner("bob", ""))).alive
    with pytest.raises(NameTaken):
        await backend.remove("jupyter-alice", ALICE)
    assert cluster.left() == {"pods": ["jupyter-alice"]}
    assert [s.owner for s in await backend.first_listed()] == [ServerOwner("bob", "")]


async def test_an_odd_username_is_matched_by_its_exact_text_not_its_escaped_label(cluster: FakeCluster, make_backend) -> None:
    server = spec("Ana.María")
    backend = make_backend(cluster)
    await backend.launch(server)
    pod = cluster.api.get("pods", NAMESPACE, server.name)
    assert pod["metadata"]["labels"]["jovial.user"] != "Ana.María"  # escaped as a label value
    assert await backend.watcher.listed(5)
    await until(lambda: server.name in backend.watcher.state.pods)
    assert (await backend.status(server.name, server.owner)).alive
    assert not (await backend.status(server.name, ServerOwner("ana.maria", ""))).alive
    await backend.remove(server.name, server.owner)
    assert cluster.left() == {}


async def test_each_deletion_names_the_uid_of_the_object_it_read(cluster: FakeCluster, make_backend) -> None:
    server = spec()
    backend = make_backend(cluster)
    await backend.launch(server)
    uids = {kind: cluster.api.get(kind, NAMESPACE, name)["metadata"]["uid"]
            for kind, name in (("pods", server.name), ("services", server.name), ("configmaps", f"{server.name}-files"))}
    await backend.remove(server.name, server.owner)
    assert {kind: body["preconditions"]["uid"] for kind, _, body in cluster.api.deletions} == uids
    assert cluster.left() == {}
