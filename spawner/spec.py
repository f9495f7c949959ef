"""ServerSpec: the backend-neutral, immutable description of one user server, and its pure builder.

Settings + identity + what the hub hands over (environment, command) -> ServerSpec. No I/O here:
every backend (Swarm, Kubernetes) translates the same spec, so what is decided here means the
same on each of them.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .identity import PosixIdentity
from .nss import group_file, passwd_file


@dataclass(frozen=True)
class MountSpec:
    """A directory made visible in the server: a bind of the shared filesystem (same path on every
    eligible node), or, with `size_bytes`, a private in-memory scratch space that dies with the server."""

    source: str
    target: str
    read_only: bool = False
    size_bytes: int | None = None

    @property
    def is_scratch(self) -> bool:
        return self.size_bytes is not None


@dataclass(frozen=True)
class DataCollection:
    """A site dataset on the shared filesystem, mounted read-only (for members of `groups`, or everyone)."""

    source: str
    target: str
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FileSpec:
    """A small read-only file placed in the server (Docker config / ConfigMap)."""

    key: str
    target: str
    content: str


@dataclass(frozen=True)
class ResourceSpec:
    """CPU in cores, memory in bytes (None: no limit / no reservation), and countable node
    resources such as GPUs, by the name the nodes advertise them under (e.g. {"NVIDIA-GPU": 1})."""

    cpu_limit: float | None = None
    cpu_reservation: float | None = None
    mem_limit: int | None = None
    mem_reservation: int | None = None
    generic: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class ServerOwner:
    """Whose server an object is: the exact username and server name ('' for the default server),
    as its jovial.user and jovial.server labels carry them."""

    username: str
    server_name: str

    def __str__(self) -> str:
        return f"user {self.username!r}, server {self.server_name!r}"


@dataclass(frozen=True)
class ServerSpec:
    """Everything a backend needs to run one user server, and nothing backend-specific."""

    name: str
    username: str
    server_name: str
    image: str
    command: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    uid: int
    gid: int
    supplementary_gids: tuple[int, ...]
    workdir: str
    mounts: tuple[MountSpec, ...]
    files: tuple[FileSpec, ...]
    resources: ResourceSpec
    node_labels: tuple[tuple[str, str], ...]
    network: str
    port: int
    labels: tuple[tuple[str, str], ...]

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def owner(self) -> ServerOwner:
        return ServerOwner(self.username, self.server_name)


@dataclass(frozen=True)
class SiteSettings:
    """The site's choices that shape every server (read from the spawner's traitlets)."""

    image: str
    network: str
    port: int
    home_source_template: str
    home_target_template: str
    node_labels: Mapping[str, str]
    resources: ResourceSpec
    project_source_template: str = ""
    project_target_template: str = "/projects/{group}"
    data_collections: tuple[DataCollection, ...] = ()
    scratch_bytes: int | None = None
    scratch_target: str = "/scratch"


MANAGED_LABEL = "jovial.managed"
USER_LABEL = "jovial.user"
SERVER_LABEL = "jovial.server"
OBJECT_LABEL = "jovial.object"


def build_server_spec(
    site: SiteSettings,
    identity: PosixIdentity,
    name: str,
    server_name: str,
    env: Mapping[str, str],
    command: Sequence[str],
    project_groups: Sequence[str] = (),
) -> ServerSpec:
    """The spec of `identity`'s server called `name`: runs as the user, home mounted, limits applied.

    `project_groups` are the user's groups whose project directory exists (the storage step looks).
    """
    home_source = site.home_source_template.format(username=identity.username)
    home_target = site.home_target_template.format(username=identity.username)
    full_env = {
        **env,
        "HOME": home_target,
        "USER": identity.username,
        "LOGNAME": identity.username,
        "SHELL": "/bin/bash",
    }
    return ServerSpec(
        name=name,
        username=identity.username,
        server_name=server_name,
        image=site.image,
        command=tuple(command),
        env=tuple(sorted(full_env.items())),
        uid=identity.uid,
        gid=identity.gid,
        supplementary_gids=identity.supplementary_gids,
        workdir=home_target,
        mounts=_mounts(site, identity, home_source, home_target, project_groups),
        files=(
            FileSpec(key="passwd", target="/etc/passwd", content=passwd_file(identity, home_target)),
            FileSpec(key="group", target="/etc/group", content=group_file(identity)),
        ),
        resources=site.resources,
        node_labels=tuple(sorted(site.node_labels.items())),
        network=site.network,
        port=site.port,
        labels=(
            (MANAGED_LABEL, "true"),
            (OBJECT_LABEL, name),
            (SERVER_LABEL, server_name),
            (USER_LABEL, identity.username),
        ),
    )


def _mounts(
    site: SiteSettings, identity: PosixIdentity, home_source: str, home_target: str, project_groups: Sequence[str]
) -> tuple[MountSpec, ...]:
    groups = {g.name for g in identity.groups}
    mounts = [MountSpec(source=home_source, target=home_target)]
    mounts += [
        MountSpec(
            source=site.project_source_template.format(group=group),
            target=site.project_target_template.format(group=group),
        )
        for group in sorted(project_groups)
    ]
    mounts += [
        MountSpec(source=d.source, target=d.target, read_only=True)
        for d in site.data_collections
        if not d.groups or d.groups & groups
    ]
    if site.scratch_bytes:
        mounts.append(MountSpec(source="", target=site.scratch_target, size_bytes=site.scratch_bytes))
    return tuple(mounts)
