"""Reading Swarm task lists: the step to show, the address, and failures explained in words."""

from jovial.backends.swarm.tasks import ending, newest, server_status, task_address, view_tasks

NODES = {"n1": "node-one"}


def task(state: str, err: str = "", index: int = 1, address: str | None = None) -> dict:
    t = {"NodeID": "n1", "Version": {"Index": index}, "Status": {"State": state, "Err": err}, "DesiredState": "running"}
    if address:
        t["NetworksAttachments"] = [
            {"Network": {"Spec": {"Name": "ingress"}}, "Addresses": ["10.255.0.9/16"]},
            {"Network": {"Spec": {"Name": "jovial"}}, "Addresses": [address]},
        ]
    return t


ON_FAILURE = {"Condition": "on-failure", "MaxAttempts": 3, "Delay": 10**9, "Window": 600 * 10**9}


def view(*tasks: dict, now: float = 0.0):
    return view_tasks(list(tasks), NODES, "jovial", "img", ON_FAILURE, now)


def test_steps_name_the_node() -> None:
    assert view(task("preparing")).message == "Preparing your server on node node-one (getting the image ready)"
    assert view().message.startswith("Waiting for the cluster")


def test_running_task_gives_its_address_on_the_network() -> None:
    v = view(task("running", address="10.0.1.7/24"))
    assert v.address == "10.0.1.7" and v.failure is None
    assert task_address(task("running"), "jovial") is None


def test_unschedulable_task_fails_at_once() -> None:
    v = view(task("pending", "no suitable node (scheduling constraints not satisfied on 1 node)"))
    assert v.failure and "No node of the cluster can run your server" in v.failure


def test_missing_mount_source_is_explained() -> None:
    v = view(task("rejected", 'invalid mount config for type "bind": bind source path does not exist: /lustre/home/x'))
    assert v.failure and "/lustre/home/x" in v.failure and "missing on node node-one" in v.failure


def test_missing_image_is_explained() -> None:
    v = view(task("rejected", "No such image: nope:latest"))
    assert v.failure and "The image img is not on node node-one" in v.failure


def test_an_earlier_failed_task_fails_the_start_even_when_a_retry_is_pending() -> None:
    v = view(task("failed", "task: non-zero exit (3)", index=1), task("pending", index=2))
    assert v.failure == "Your server stopped right after starting (exit code 3)." and v.exited


def test_a_task_that_completed_while_starting_is_a_failure() -> None:
    assert view(task("complete")).failure


def test_a_stale_task_reporting_late_does_not_hide_the_running_replacement() -> None:
    replacement = {**task("running", index=10, address="10.0.1.9/24"), "CreatedAt": "2026-11-25T10:00:05.5Z"}
    stale = {**task("shutdown", index=12), "DesiredState": "shutdown", "CreatedAt": "2026-11-25T10:00:00.123456789Z"}
    status = server_status([stale, replacement], ["jovial"], NODES, {"Condition": "on-failure", "MaxAttempts": 3}, 0.0, 120.0)
    assert status.alive and status.address == "10.0.1.9"


def test_creation_times_compare_whatever_their_fraction_digits() -> None:
    late = {**task("shutdown"), "DesiredState": "shutdown", "CreatedAt": "2026-11-25T10:00:00.9Z"}
    early = {**task("complete"), "DesiredState": "shutdown", "CreatedAt": "2026-11-25T10:00:00.10000000Z"}
    assert newest([early, late]) is late  # .9 s is later than .1 s, though "9" is the shorter string


def ended(state: str, code: int | None, err: str = "", memory: int | None = None) -> dict:
    t = {**task(state, err), "DesiredState": "shutdown"}
    if code is not None:
        t["Status"]["ContainerStatus"] = {"ExitCode": code}
    if memory:
        t["Spec"] = {"Resources": {"Limits": {"MemoryBytes": memory}}, "ContainerSpec": {"Image": "sha256:abc"}}
    return t


def test_why_a_server_ended_is_said_in_words() -> None:
    assert ending(ended("complete", 0), "node-one") == "Your server shut itself down (as after File > Shut Down in JupyterLab)."
    killed = ending(ended("failed", 137, "task: non-zero exit (137)", memory=2 << 30), "node-one")
    assert killed == (
        "Your server was killed (exit code 137) on node node-one; most often that is because it needed "
        "more memory than its limit of 2 GiB."
    )
    assert ending(ended("failed", 137, memory=None), "n").endswith("because it ran out of memory.")
    assert ending(ended("failed", 3, "task: non-zero exit (3)"), "node-one") == "Your server stopped on node node-one with exit code 3."
    assert "not on node node-one" in ending(ended("rejected", None, "No such image: x", memory=1 << 20), "node-one")
    assert ending(ended("shutdown", None), "node-one") == "The cluster stopped your server on node node-one (shutdown: no reason given)."


def test_a_server_that_failed_after_its_restarts_says_how_often_it_was_started() -> None:
    tries = [{**ended("failed", 137, memory=512 << 20), "CreatedAt": f"2026-12-01T10:00:0{i}Z"} for i in range(4)]
    status = server_status(tries, ["jovial"], NODES, {"Condition": "on-failure", "MaxAttempts": 3}, 0.0, 120.0)
    assert not status.alive
    assert status.reason.endswith("its limit of 512 MiB. Swarm had started it 4 times.")


BUSY = ("starting container failed: unable to remount dir as readonly: mount tmpfs:/var/lib/docker/containers/5c/mounts/secrets, "
        "flags: 0x21, data: uid=0,gid=0: device or resource busy")


def test_an_engine_hiccup_at_start_is_left_to_swarm_s_retries_until_they_are_used_up() -> None:
    first = {**task("failed", BUSY), "CreatedAt": "2026-12-01T10:00:00Z"}
    first["Status"]["Timestamp"] = "2026-12-01T10:00:01Z"
    at = 1796119201.5  # half a second after it failed
    waiting = view(first, now=at)
    assert waiting.failure is None and waiting.message.startswith("Node node-one could not start your server (starting container failed")
    assert waiting.message.endswith("; trying again")
    retried = {**task("running", index=2, address="10.0.1.8/24"), "CreatedAt": "2026-12-01T10:00:02Z"}
    assert view(first, retried, now=at + 2).address == "10.0.1.8"  # the retry got past it
    tries = [{**task("failed", BUSY, index=i), "CreatedAt": f"2026-12-01T10:00:0{i}Z"} for i in range(4)]
    for t in tries:
        t["Status"]["Timestamp"] = t["CreatedAt"]
    used_up = view(*tries, now=1796119203.5)
    assert used_up.failure == f"The cluster could not run your server on node node-one: {BUSY}."


def test_a_failure_that_retrying_cannot_mend_fails_at_once_though_retries_are_left() -> None:
    missing = view(task("rejected", "invalid mount config for type \"bind\": bind source path does not exist: /lustre/x"))
    assert missing.failure and "missing on node node-one" in missing.failure
