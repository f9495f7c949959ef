"""Whether a pod's server is alive for the hub's poll, read from pods as the API shows them
(pure: no API server). A crash restarted in place stays alive up to MAX_RESTARTS, as on Swarm."""

from jovial.backends.kubernetes.pods import MAX_RESTARTS, pod_status


def pod(phase: str = "Running", state: dict | None = None, restarts: int = 0, last: dict | None = None, deleting: bool = False) -> dict:
    status = {"name": "notebook", "restartCount": restarts, "state": state or {"running": {}}, "lastState": last or {}}
    meta = {"name": "jupyter-alice", "uid": "u1", **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})}
    return {"metadata": meta, "status": {"phase": phase, "podIP": "10.244.0.7", "containerStatuses": [status]}}


def test_a_running_pod_is_alive_at_its_address_and_a_pending_one_without() -> None:
    assert (pod_status(pod()).alive, pod_status(pod()).address) == (True, "10.244.0.7")
    pending = pod_status(pod("Pending", {"waiting": {"reason": "ContainerCreating"}}))
    assert pending.alive and pending.address is None


def test_a_crash_restarted_in_place_is_alive_until_it_has_restarted_too_often() -> None:
    crashed = {"terminated": {"exitCode": 1, "message": "boom"}}
    looping = {"waiting": {"reason": "CrashLoopBackOff"}}
    assert pod_status(pod(state=looping, restarts=MAX_RESTARTS, last=crashed)).alive
    dead = pod_status(pod(state=looping, restarts=MAX_RESTARTS + 1, last=crashed))
    assert not dead.alive
    assert dead.reason == f"restarted {MAX_RESTARTS + 1} times; Your server stopped (exit code 1). Its last output:\nboom"
    assert pod_status(pod(restarts=MAX_RESTARTS + 5)).alive  # running again after the restarts


def test_a_finished_or_deleted_pod_is_not_alive_and_says_why() -> None:
    ended = pod_status(pod("Succeeded", {"terminated": {"exitCode": 0, "reason": "Completed"}}))
    assert not ended.alive and ended.reason == "Succeeded: Your server stopped (exit code 0)."
    evicted = pod_status(
        {"metadata": {}, "status": {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}}
    )
    assert not evicted.alive and evicted.reason == "Failed: Evicted: The node was low on resource: memory."
    assert pod_status(pod(deleting=True)).reason == "Your server's pod is being removed from the cluster."
