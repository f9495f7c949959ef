"""ServerSpec -> the Kubernetes objects of one user server: a ConfigMap, a Service and a Pod. Pure.

The manifests are plain dicts in the API's own JSON form, so they are checked against the real
OpenAPI schemas as they are and sent as they are. Security is decided here for every server, as
the Swarm builder does: the user's uid, gid and groups (`runAsNonRoot`), no privilege escalation
(the Kubernetes form of no-new-privileges), every capability dropped, the runtime's default
seccomp profile, no service-account token and no service links in the environment. A shared
process namespace makes the pod's pause process PID 1, the init that reaps the server's zombies
(Swarm: `init`). The user's /etc/passwd and /etc/group come from the ConfigMap.

Swarm's generic resources (e.g. `NVIDIA-GPU`) become Kubernetes extended resources (e.g.
`nvidia.com/gpu`) by the site's `extended_resources` map; a name missing from it is an error.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import LaunchError, SiteMisconfigured
from ...spec import MANAGED_LABEL, OBJECT_LABEL, SERVER_LABEL, USER_LABEL, MountSpec, ServerSpec
from .labels import checked_labels, escaped_value

CONTAINER = "notebook"
PORT_NAME = "notebook"
FILES_VOLUME = "jovial-files"
# Docker's default stop timeout, so that a server has the same time to save its work on both backends.
STOP_GRACE_SECONDS = 10
# A server that crashes is restarted in place, like Swarm's on-failure policy; `pods.py` counts it
# dead after this many restarts, as Swarm gives up after this many attempts.
RESTART_POLICY = "OnFailure"

Manifest = dict[str, Any]
FREE_TEXT_LABELS = (USER_LABEL, SERVER_LABEL)  # escaped in labels, exact in annotations


@dataclass(frozen=True)
class Manifests:
    """Everything made for one server, in the order it is created."""

    config_map: Manifest
    service: Manifest
    pod: Manifest


def config_map_name(name: str) -> str:
    """The ConfigMap of server `name` (a DNS subdomain: 253 characters are allowed)."""
    return f"{name}-files"


def cpu_quantity(cores: float) -> str:
    """Cores in millicores; 0 stays 0m (a request of nothing). Any other amount that is not at
    least one millicore is refused: as a limit, 0 would mean no limit at all."""
    millicores = round(cores * 1000)
    if cores and millicores < 1:
        raise SiteMisconfigured(f"A CPU amount of {cores} cores is less than 1 millicore, which Kubernetes would take for no limit.")
    return f"{millicores}m"


def manifests(spec: ServerSpec, namespace: str, extended_resources: Mapping[str, str]) -> Manifests:
    """The ConfigMap, Service and Pod of `spec` in `namespace`."""
    return Manifests(
        config_map=_config_map(spec, namespace),
        service=_service(spec, namespace),
        pod=_pod(spec, namespace, extended_resources),
    )


def _metadata(spec: ServerSpec, name: str, namespace: str) -> Manifest:
    """The spec's labels; the username and server name escaped as label values (the exact text in
    annotations). The object name is a DNS label already, and stays as it is for selectors."""
    labels = {key: escaped_value(value) if key in FREE_TEXT_LABELS else value for key, value in spec.labels}
    raw = {key: value for key, value in spec.labels if key in FREE_TEXT_LABELS}
    return {"name": name, "namespace": namespace, "labels": labels, "annotations": raw}


def server_labels(metadata: Mapping[str, Any]) -> dict[str, str]:
    """An object's labels with the exact username and server name from its annotations (what
    `_metadata` escaped): what whose server it is is read from (`backends/ownership.py`)."""
    annotations = metadata.get("annotations") or {}
    exact = {key: annotations[key] for key in FREE_TEXT_LABELS if key in annotations}
    return {**(metadata.get("labels") or {}), **exact}


def _config_map(spec: ServerSpec, namespace: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(spec, config_map_name(spec.name), namespace),
        "immutable": True,
        "data": {f.key: f.content for f in spec.files},
    }


def _service(spec: ServerSpec, namespace: str) -> Manifest:
    """Headless (Swarm: dnsrr): the name resolves to the pod's own address, which the hub routes to."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, spec.name, namespace),
        "spec": {
            "clusterIP": "None",
            "selector": {OBJECT_LABEL: spec.name, MANAGED_LABEL: "true"},
            "ports": [{"name": PORT_NAME, "port": spec.port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def _volume_name(index: int) -> str:
    return f"mount-{index}"


def _volume(index: int, mount: MountSpec) -> Manifest:
    if mount.is_scratch:
        return {"name": _volume_name(index), "emptyDir": {"medium": "Memory", "sizeLimit": str(mount.size_bytes)}}
    # Directory: a missing source fails the mount (FailedMount) instead of being created as root's.
    return {"name": _volume_name(index), "hostPath": {"path": mount.source, "type": "Directory"}}


def _volume_mount(index: int, mount: MountSpec) -> Manifest:
    return {"name": _volume_name(index), "mountPath": mount.target, "readOnly": mount.read_only}


def resources(spec: ServerSpec, extended_resources: Mapping[str, str]) -> Manifest:
    """Limits, and requests for what is reserved. A limit with no reservation requests 0, so that
    Kubernetes does not reserve the limit (its default): the same as on Swarm."""
    r = spec.resources
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if r.cpu_limit:
        limits["cpu"] = cpu_quantity(r.cpu_limit)
    if r.cpu_reservation or r.cpu_limit:
        requests["cpu"] = cpu_quantity(r.cpu_reservation or 0)
    if r.mem_limit:
        limits["memory"] = str(r.mem_limit)
    if r.mem_reservation or r.mem_limit:
        requests["memory"] = str(r.mem_reservation or 0)
    for kind, count in r.generic:
        if kind not in extended_resources:
            raise LaunchError(
                f"The node resource {kind!r} has no Kubernetes name: add it to kubernetes_extended_resources "
                f"(e.g. {{{kind!r}: 'example.com/{kind.lower()}'}})."
            )
        # Extended resources cannot be overcommitted: Kubernetes wants request == limit.
        limits[extended_resources[kind]] = requests[extended_resources[kind]] = str(count)
    return {key: value for key, value in (("limits", limits), ("requests", requests)) if value}


def _container(spec: ServerSpec, extended_resources: Mapping[str, str]) -> Manifest:
    mounts = [_volume_mount(i, m) for i, m in enumerate(spec.mounts)]
    mounts += [{"name": FILES_VOLUME, "mountPath": f.target, "subPath": f.key, "readOnly": True} for f in spec.files]
    return {
        "name": CONTAINER,
        "image": spec.image,
        "command": list(spec.command),
        "env": [{"name": key, "value": value} for key, value in spec.env],
        "workingDir": spec.workdir,
        "ports": [{"name": PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}],
        "resources": resources(spec, extended_resources),
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
        },
        # A crash's last output lands in the pod's status: the spawn error shows it without a log call.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _pod(spec: ServerSpec, namespace: str, extended_resources: Mapping[str, str]) -> Manifest:
    volumes = [_volume(i, m) for i, m in enumerate(spec.mounts)]
    volumes.append({
        "name": FILES_VOLUME,
        "configMap": {
            "name": config_map_name(spec.name),
            "items": [{"key": f.key, "path": f.key} for f in spec.files],
            "defaultMode": 0o444,
        },
    })
    pod_spec: Manifest = {
        "containers": [_container(spec, extended_resources)],
        "volumes": volumes,
        "restartPolicy": RESTART_POLICY,
        "terminationGracePeriodSeconds": STOP_GRACE_SECONDS,
        "shareProcessNamespace": True,
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsUser": spec.uid,
            "runAsGroup": spec.gid,
            "supplementalGroups": list(spec.supplementary_gids),
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if spec.node_labels:
        pod_spec["nodeSelector"] = checked_labels(dict(spec.node_labels), "A node label of your server's placement")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _metadata(spec, spec.name, namespace), "spec": pod_spec}
