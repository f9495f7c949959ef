"""Parity: the same site config and identity give the equivalent Swarm service and Kubernetes pod,
checked field by field for every spec of the matrix: uid/gid/groups, mounts and their read-only
flags, passwd/group files, limits and reservations, placement, environment, command, working
directory, the security options and the restart policy. Both sides are read back from what each
builder produced (no cluster: the builders are pure)."""

import re

import pytest

from jovial.backends.kubernetes.builder import manifests
from jovial.backends.kubernetes.pods import MAX_RESTARTS
from jovial.backends.swarm.builder import NANO, NO_NEW_PRIVILEGES, config_args, service_args
from jovial.spec import ServerSpec
from tests.kubernetes.fake_kubelet import quantity
from tests.kubernetes.matrix import EXTENDED_RESOURCES, MATRIX


def swarm_view(spec: ServerSpec) -> dict:
    """What the Swarm service arguments say, in neutral terms."""
    configs = {c.name: c for c in config_args(spec)}
    args = service_args(spec, {name: f"id-{name}" for name in configs})
    task = args["task_template"]
    container = task["ContainerSpec"]
    uid, gid = container["User"].split(":")
    resources = task.get("Resources", {})
    limits, reservations = resources.get("Limits", {}), resources.get("Reservations", {})
    generic = {g["DiscreteResourceSpec"]["Kind"]: g["DiscreteResourceSpec"]["Value"] for g in reservations.get("GenericResources", [])}
    assert container["Command"][: len(NO_NEW_PRIVILEGES)] == list(NO_NEW_PRIVILEGES)
    return {
        "uid": int(uid), "gid": int(gid), "groups": [int(g) for g in container.get("Groups") or []],
        "mounts": sorted(
            ("scratch", m["Target"], m["TmpfsOptions"]["SizeBytes"], False) if m["Type"] == "tmpfs"
            else ("shared", m["Target"], m["Source"], m["ReadOnly"])
            for m in container.get("Mounts", [])
        ),
        "files": sorted((c["File"]["Name"], configs[c["ConfigName"]].data.decode()) for c in container["Configs"]),
        "cpu_limit": limits.get("NanoCPUs", 0) / NANO, "cpu_reserved": reservations.get("NanoCPUs", 0) / NANO,
        "mem_limit": limits.get("MemoryBytes", 0), "mem_reserved": reservations.get("MemoryBytes", 0),
        "devices": generic,
        "placement": sorted(tuple(re.fullmatch(r"node\.labels\.(.+)==(.*)", c).groups()) for c in task["Placement"]["Constraints"]),
        "env": container["Env"] if isinstance(container["Env"], dict) else dict(e.split("=", 1) for e in container["Env"]),
        "command": container["Command"][len(NO_NEW_PRIVILEGES):],
        "workdir": container["Dir"],
        "no_new_privileges": True, "capabilities_dropped": container["CapabilityDrop"], "init": container["Init"],
        "restart": (task["RestartPolicy"]["Condition"], task["RestartPolicy"]["MaxAttempts"]),
        "labels": args["labels"],
    }


def kubernetes_view(spec: ServerSpec) -> dict:
    """What the Kubernetes manifests say, in the same neutral terms."""
    made = manifests(spec, "ns", EXTENDED_RESOURCES)
    pod = made.pod["spec"]
    container = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts, files = [], []
    for m in container["volumeMounts"]:
        volume = volumes[m["name"]]
        if "configMap" in volume:
            assert volume["configMap"]["name"] == made.config_map["metadata"]["name"]
            files.append((m["mountPath"], made.config_map["data"][m["subPath"]]))
        elif "emptyDir" in volume:
            assert volume["emptyDir"]["medium"] == "Memory"
            mounts.append(("scratch", m["mountPath"], int(quantity(volume["emptyDir"]["sizeLimit"])), m["readOnly"]))
        else:
            assert volume["hostPath"]["type"] == "Directory"
            mounts.append(("shared", m["mountPath"], volume["hostPath"]["path"], m["readOnly"]))
    limits, requests = container["resources"].get("limits", {}), container["resources"].get("requests", {})
    swarm_name = {v: k for k, v in EXTENDED_RESOURCES.items()}
    security, context = pod["securityContext"], container["securityContext"]
    return {
        "uid": security["runAsUser"], "gid": security["runAsGroup"], "groups": security["supplementalGroups"],
        "mounts": sorted(mounts), "files": sorted(files),
        "cpu_limit": quantity(limits.get("cpu", "0")), "cpu_reserved": quantity(requests.get("cpu", "0")),
        "mem_limit": quantity(limits.get("memory", "0")), "mem_reserved": quantity(requests.get("memory", "0")),
        "devices": {swarm_name[k]: int(v) for k, v in requests.items() if k in swarm_name},
        "placement": sorted(pod.get("nodeSelector", {}).items()),
        "env": {e["name"]: e["value"] for e in container["env"]},
        "command": container["command"],
        "workdir": container["workingDir"],
        "no_new_privileges": context["allowPrivilegeEscalation"] is False and security["runAsNonRoot"],
        "capabilities_dropped": context["capabilities"]["drop"], "init": pod["shareProcessNamespace"],
        "restart": ({"OnFailure": "on-failure"}[pod["restartPolicy"]], MAX_RESTARTS),
        "labels": {**made.pod["metadata"]["labels"], **made.pod["metadata"]["annotations"]},
    }


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_swarm_service_and_kubernetes_pod_are_equivalent_field_by_field(case: str) -> None:
    swarm, kubernetes = swarm_view(MATRIX[case]), kubernetes_view(MATRIX[case])
    assert swarm.keys() == kubernetes.keys()
    for field in swarm:
        assert swarm[field] == kubernetes[field], field


def test_the_views_do_see_differences() -> None:
    """The comparison can fail: specs that differ give views that differ."""
    assert kubernetes_view(MATRIX["plain"])["mounts"] != kubernetes_view(MATRIX["groups-projects-data"])["mounts"]
    assert swarm_view(MATRIX["profile-small"])["cpu_limit"] != kubernetes_view(MATRIX["profile-large"])["cpu_limit"]
