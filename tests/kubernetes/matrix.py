"""A matrix of ServerSpecs the way sites configure them (no cluster, no filesystem): the plain
case, profiles of several sizes, a GPU profile, project and read-only data mounts, many groups,
scratch, and usernames and server names that are not valid Kubernetes label values."""

import dataclasses

from jovial.identity import PosixIdentity, identity_from_mapping
from jovial.names import server_object_name
from jovial.spec import DataCollection, ResourceSpec, ServerSpec, SiteSettings, build_server_spec

EXTENDED_RESOURCES = {"NVIDIA-GPU": "nvidia.com/gpu"}

SITE = SiteSettings(
    image="registry.example.org/jovial/singleuser:2026.11",
    network="jovial",
    port=8888,
    home_source_template="/lustre/home/{username}",
    home_target_template="/home/{username}",
    node_labels={"jovial.fs": "lustre"},
    resources=ResourceSpec(cpu_limit=1.0, mem_limit=2 * 2**30),
    project_source_template="/lustre/projects/{group}",
    data_collections=(
        DataCollection("/lustre/data/sdss-dr17", "/data/sdss-dr17"),
        DataCollection("/lustre/data/gaia-dr3", "/data/gaia-dr3", frozenset({"gaia"})),
    ),
)

PROFILES = {
    "small": ResourceSpec(cpu_limit=1.0, mem_limit=2 * 2**30),
    "large": ResourceSpec(cpu_limit=8.0, cpu_reservation=2.0, mem_limit=32 * 2**30, mem_reservation=8 * 2**30),
    "gpu": ResourceSpec(cpu_limit=8.0, mem_limit=64 * 2**30, generic=(("NVIDIA-GPU", 1),)),
    "unlimited": ResourceSpec(),
    "fractional": ResourceSpec(cpu_limit=0.25, cpu_reservation=0.1, mem_reservation=256 * 2**20),
}


def identity(username: str, uid: int = 10001, groups: dict[str, int] | None = None) -> PosixIdentity:
    return identity_from_mapping(username, {"uid": uid, "gid": uid, "name": username.title(), "groups": groups or {}})


def spec(
    username: str = "alice",
    server_name: str = "",
    site: SiteSettings = SITE,
    groups: dict[str, int] | None = None,
    project_groups: tuple[str, ...] = (),
    **site_changes: object,
) -> ServerSpec:
    site = dataclasses.replace(site, **site_changes)
    return build_server_spec(
        site,
        identity(username, groups=groups),
        name=server_object_name(username, server_name),
        server_name=server_name,
        env={"JUPYTERHUB_API_TOKEN": "secret-token", "JUPYTERHUB_USER": username},
        command=["jupyterhub-singleuser", "--ServerApp.ip=0.0.0.0"],
        project_groups=project_groups,
    )


ODD_USERNAMES = ("Ana.María", "o'brien", "x" * 64, "user@example.org", "-dash-", "a--b", "ünïcødé", "UPPER")

MATRIX: dict[str, ServerSpec] = {
    "plain": spec(),
    **{f"profile-{name}": spec(resources=r) for name, r in PROFILES.items()},
    "gpu-placed": spec(resources=PROFILES["gpu"], node_labels={"jovial.fs": "lustre", "gpu": "true", "example.org/pool": "survey"}),
    "groups-projects-data": spec(
        groups={"astro": 20001, "gaia": 20002, "survey-team": 20003}, project_groups=("astro", "survey-team")
    ),
    "scratch": spec(scratch_bytes=4 * 2**30),
    "no-placement": spec(node_labels={}),
    "named-server": spec(server_name="My Analysis #2"),
    **{f"odd-username-{i}": spec(username=name) for i, name in enumerate(ODD_USERNAMES)},
}
