"""ServerSpec from settings + identity, and its translation into Swarm service arguments (no cluster)."""

import dataclasses

import pytest

from jovial.backends.swarm.builder import config_args, placement_constraints, service_args
from jovial.errors import SiteMisconfigured
from jovial.identity import identity_from_ldap
from jovial.spec import DataCollection, ResourceSpec, SiteSettings, build_server_spec

SITE = SiteSettings(
    image="sha256:abc",
    network="jovial",
    port=8888,
    home_source_template="/lustre/home/{username}",
    home_target_template="/home/{username}",
    node_labels={"jovial.fs": "lustre"},
    resources=ResourceSpec(cpu_limit=1.5, cpu_reservation=0.25, mem_limit=2 << 30, mem_reservation=None),
)
ALICE = identity_from_ldap(
    "alice",
    {"uidNumber": 10001, "gidNumber": 10001, "cn": "Alice"},
    [{"cn": "astro", "gidNumber": 20001}, {"cn": "alice", "gidNumber": 10001}],
)


def make_spec(**env: str):
    return build_server_spec(SITE, ALICE, "jupyter-alice", "", {"JUPYTERHUB_API_TOKEN": "t", **env}, ["jupyterhub-singleuser"])


def test_spec_runs_as_the_user_with_home_mounted() -> None:
    spec = make_spec()
    assert (spec.uid, spec.gid, spec.supplementary_gids) == (10001, 10001, (20001,))
    assert spec.mounts[0].source == "/lustre/home/alice" and spec.mounts[0].target == "/home/alice"
    assert not spec.mounts[0].read_only
    assert spec.workdir == "/home/alice"
    assert spec.env_dict["HOME"] == "/home/alice" and spec.env_dict["USER"] == "alice"
    assert spec.env_dict["JUPYTERHUB_API_TOKEN"] == "t"
    assert {f.target for f in spec.files} == {"/etc/passwd", "/etc/group"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.image = "other"  # type: ignore[misc]


def test_hub_environment_cannot_override_the_users_home() -> None:
    assert make_spec(HOME="/root").env_dict["HOME"] == "/home/alice"


def test_service_args_carry_identity_security_limits_and_placement() -> None:
    spec = make_spec()
    ids = {c.name: f"id-{c.key}" for c in config_args(spec)}
    args = service_args(spec, ids)
    task = args["task_template"]
    container = task["ContainerSpec"]
    assert args["name"] == "jupyter-alice"
    assert container["User"] == "10001:10001" and container["Groups"] == ["20001"]
    assert container["CapabilityDrop"] == ["ALL"] and container["Init"] is True
    assert container["Command"][:2] == ["setpriv", "--no-new-privs"]
    assert container["Command"][2:] == ["jupyterhub-singleuser"]
    assert container["Mounts"] == [{"Target": "/home/alice", "Source": "/lustre/home/alice", "Type": "bind", "ReadOnly": False}]
    assert sorted((c["File"]["Name"], c["ConfigID"]) for c in container["Configs"]) == [
        ("/etc/group", "id-group"),
        ("/etc/passwd", "id-passwd"),
    ]
    assert task["Resources"]["Limits"] == {"NanoCPUs": 1_500_000_000, "MemoryBytes": 2 << 30}
    assert task["Resources"]["Reservations"] == {"NanoCPUs": 250_000_000}
    assert task["Placement"]["Constraints"] == ["node.labels.jovial.fs==lustre"]
    assert [n["Target"] for n in task["Networks"]] == ["jovial"]
    assert args["endpoint_spec"]["Mode"] == "dnsrr" and "Ports" not in args["endpoint_spec"]
    assert args["labels"]["jovial.object"] == "jupyter-alice" and args["labels"]["jovial.user"] == "alice"


def test_config_names_change_with_content_and_are_short() -> None:
    first = {c.key: c.name for c in config_args(make_spec())}
    other = build_server_spec(SITE, dataclasses.replace(ALICE, uid=10009), "jupyter-alice", "", {}, ["x"])
    second = {c.key: c.name for c in config_args(other)}
    assert first["passwd"] != second["passwd"] and first["group"] == second["group"]
    assert all(len(n) <= 64 for n in [*first.values(), *second.values()])


def test_several_node_labels_all_become_constraints() -> None:
    spec = build_server_spec(
        dataclasses.replace(SITE, node_labels={"jovial.fs": "lustre", "gpu": "true"}), ALICE, "n", "", {}, ["x"]
    )
    assert placement_constraints(spec) == ["node.labels.gpu==true", "node.labels.jovial.fs==lustre"]


def test_projects_data_collections_and_scratch_become_mounts() -> None:
    site = dataclasses.replace(
        SITE,
        project_source_template="/lustre/projects/{group}",
        data_collections=(
            DataCollection("/lustre/data/sdss", "/data/sdss"),
            DataCollection("/lustre/data/gaia", "/data/gaia", frozenset({"gaia"})),
            DataCollection("/lustre/data/astro", "/data/astro", frozenset({"astro"})),
        ),
        scratch_bytes=1 << 30,
    )
    spec = build_server_spec(site, ALICE, "jupyter-alice", "", {}, ["x"], project_groups=["astro"])
    assert [(m.source, m.target, m.read_only) for m in spec.mounts] == [
        ("/lustre/home/alice", "/home/alice", False),
        ("/lustre/projects/astro", "/projects/astro", False),
        ("/lustre/data/sdss", "/data/sdss", True),
        ("/lustre/data/astro", "/data/astro", True),
        ("", "/scratch", False),
    ]
    mounts = service_args(spec, {c.name: "id" for c in config_args(spec)})["task_template"]["ContainerSpec"]["Mounts"]
    assert mounts[2] == {"Target": "/data/sdss", "Source": "/lustre/data/sdss", "Type": "bind", "ReadOnly": True}
    assert mounts[4]["Type"] == "tmpfs" and mounts[4]["TmpfsOptions"] == {"SizeBytes": 1 << 30, "Mode": 0o1777}


def test_generic_resources_are_reserved() -> None:
    site = dataclasses.replace(SITE, resources=ResourceSpec(generic=(("NVIDIA-GPU", 1),)))
    spec = build_server_spec(site, ALICE, "n", "", {}, ["x"])
    reservations = service_args(spec, {c.name: "id" for c in config_args(spec)})["task_template"]["Resources"]["Reservations"]
    assert reservations["GenericResources"] == [{"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": 1}}]


@pytest.mark.parametrize("resources", [ResourceSpec(cpu_limit=1e-10), ResourceSpec(cpu_limit=1.0, cpu_reservation=1e-10)])
def test_a_cpu_amount_that_would_be_0_nanocpus_is_refused_not_sent_as_no_limit(resources: ResourceSpec) -> None:
    spec = build_server_spec(dataclasses.replace(SITE, resources=resources), ALICE, "n", "", {}, ["x"])
    with pytest.raises(SiteMisconfigured, match="1e-10 cores is less than 1 NanoCPU"):
        service_args(spec, {c.name: "id" for c in config_args(spec)})
