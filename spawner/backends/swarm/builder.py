"""ServerSpec -> arguments for Docker's create_config and create_service calls. Pure: no I/O.

Security is decided here for every server: the user's uid:gid and groups, all capabilities
dropped, no-new-privileges (via `setpriv`, because Swarm services gained that option only in
Docker API 1.46 and sites run older engines), an init process, no published ports (reachable
only on the private overlay network, through the proxy).
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from docker.types import (
    ConfigReference,
    ContainerSpec,
    EndpointSpec,
    Mount,
    NetworkAttachmentConfig,
    Placement,
    Resources,
    RestartPolicy,
    TaskTemplate,
)

from ...errors import SiteMisconfigured
from ...spec import FileSpec, MountSpec, ServerSpec

NO_NEW_PRIVILEGES = ("setpriv", "--no-new-privs")
NANO = 1_000_000_000
# A clean exit (the user shut the server down) stays stopped. A crash, a lost node or an engine
# restart is retried after a second, RESTARTS times within RESTART_WINDOW seconds: a server that
# keeps dying is given up (and its user told why), one whose node is lost now and then is not.
RESTART_DELAY, RESTARTS, RESTART_WINDOW = 1, 3, 600


@dataclass(frozen=True)
class ConfigArgs:
    """One Docker config to create: its name, content and labels, and the file it becomes."""

    key: str
    name: str
    data: bytes
    labels: dict[str, str]


def config_args(spec: ServerSpec) -> list[ConfigArgs]:
    """The configs holding the server's small files; names change whenever the content does."""
    return [_config(spec, f) for f in spec.files]


def _config(spec: ServerSpec, file: FileSpec) -> ConfigArgs:
    digest = hashlib.sha256(f"{spec.name}\0{file.content}".encode()).hexdigest()[:20]
    return ConfigArgs(
        key=file.key,
        name=f"jovial-{file.key}-{digest}",
        data=file.content.encode(),
        labels=dict(spec.labels),  # jovial.object finds it with its server; jovial.user and jovial.server say whose
    )


def _mount(mount: MountSpec) -> Mount:
    if mount.is_scratch:
        return Mount(target=mount.target, source=None, type="tmpfs", tmpfs_size=mount.size_bytes, tmpfs_mode=0o1777)
    return Mount(target=mount.target, source=mount.source, type="bind", read_only=mount.read_only)


def nano_cpus(cores: float | None) -> int | None:
    """Cores as NanoCPUs; None for none (None or 0). Any other amount that is not at least one
    NanoCPU is refused: Docker takes 0 for no limit at all."""
    if not cores:
        return None
    nano = int(cores * NANO)
    if nano < 1:
        raise SiteMisconfigured(f"A CPU amount of {cores} cores is less than 1 NanoCPU, which Docker would take for no limit.")
    return nano


def placement_constraints(spec: ServerSpec) -> list[str]:
    return [f"node.labels.{key}=={value}" for key, value in spec.node_labels]


def service_args(spec: ServerSpec, config_ids: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for APIClient.create_service; `config_ids` maps config names to ids."""
    configs = {c.name: c for c in config_args(spec)}
    targets = {f.key: f.target for f in spec.files}
    container = ContainerSpec(
        image=spec.image,
        command=[*NO_NEW_PRIVILEGES, *spec.command],
        env=dict(spec.env),  # not spec.env_dict: ContainerSpec takes dict[str, str | bytes | None]
        workdir=spec.workdir,
        user=f"{spec.uid}:{spec.gid}",
        groups=[str(g) for g in spec.supplementary_gids],
        labels=dict(spec.labels),
        mounts=[_mount(m) for m in spec.mounts],
        configs=[
            ConfigReference(config_ids[name], name, filename=targets[c.key], uid="0", gid="0", mode=0o444)
            for name, c in configs.items()
        ],
        init=True,
        cap_drop=["ALL"],
    )
    r = spec.resources
    resources = Resources(
        cpu_limit=nano_cpus(r.cpu_limit),
        cpu_reservation=nano_cpus(r.cpu_reservation),
        mem_limit=r.mem_limit,
        mem_reservation=r.mem_reservation,
        generic_resources=dict(r.generic) or None,
    )
    task = TaskTemplate(
        container_spec=container,
        resources=resources,
        restart_policy=RestartPolicy(
            condition="on-failure", delay=RESTART_DELAY * NANO, max_attempts=RESTARTS, window=RESTART_WINDOW * NANO
        ),
        placement=Placement(constraints=placement_constraints(spec)),
        networks=[NetworkAttachmentConfig(target=spec.network)],
    )
    return {
        "name": spec.name,
        "task_template": task,
        "labels": dict(spec.labels),
        # DNS round-robin, not a virtual IP: works without IPVS, and the hub routes to the task's address.
        "endpoint_spec": EndpointSpec(mode="dnsrr"),
    }
