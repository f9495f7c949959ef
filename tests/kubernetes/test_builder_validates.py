"""Every manifest the Kubernetes builder makes, for a matrix of specs, validates in strict mode
(unknown fields rejected) against the real OpenAPI schemas of the newest Kubernetes versions that
kubernetes-validate carries; label values, names and extended resources follow the API's rules
the schemas do not encode. No cluster: the schemas are checked offline."""

import re

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions, major_minor
from packaging.version import Version

from jovial.backends.kubernetes.builder import Manifests, manifests
from jovial.backends.kubernetes.labels import is_label_key, is_label_value
from jovial.errors import LaunchError, SiteMisconfigured
from jovial.spec import ResourceSpec
from tests.kubernetes.matrix import EXTENDED_RESOURCES, MATRIX, PROFILES, spec

NEWEST = 3
VERSIONS = sorted({major_minor(v) for v in all_versions()}, key=Version)[-NEWEST:]
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def all_manifests(made: Manifests) -> list[dict]:
    return [made.config_map, made.service, made.pod]


def test_the_newest_versions_are_found_in_the_library() -> None:
    assert len(VERSIONS) == NEWEST and Version(VERSIONS[0]) >= Version("1.30"), VERSIONS


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(MATRIX))
def test_every_manifest_validates_strictly(case: str, version: str) -> None:
    for manifest in all_manifests(manifests(MATRIX[case], "jovial-users", EXTENDED_RESOURCES)):
        kubernetes_validate.validate(manifest, version, strict=True)


def test_strict_validation_does_reject_an_unknown_field() -> None:
    """The check above can fail: a misspelt field is caught."""
    pod = manifests(MATRIX["plain"], "ns", EXTENDED_RESOURCES).pod
    pod["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_names_and_labels_follow_the_api_rules(case: str) -> None:
    made = manifests(MATRIX[case], "jovial-users", EXTENDED_RESOURCES)
    assert DNS_LABEL.fullmatch(made.pod["metadata"]["name"]) and len(made.pod["metadata"]["name"]) <= 63
    assert made.service["metadata"]["name"] == made.pod["metadata"]["name"]  # Services need DNS-1035 labels
    assert DNS_SUBDOMAIN.fullmatch(made.config_map["metadata"]["name"]) and len(made.config_map["metadata"]["name"]) <= 253
    for manifest in all_manifests(made):
        for key, value in manifest["metadata"]["labels"].items():
            assert is_label_key(key) and is_label_value(value), (key, value)
    for key, value in made.pod["spec"].get("nodeSelector", {}).items():
        assert is_label_key(key) and is_label_value(value)
    for volume in made.pod["spec"]["volumes"]:
        assert DNS_LABEL.fullmatch(volume["name"]) and len(volume["name"]) <= 63
    for port in made.pod["spec"]["containers"][0]["ports"]:
        assert len(port["name"]) <= 15


def test_odd_usernames_get_distinct_label_values_and_keep_the_exact_name_in_an_annotation() -> None:
    pods = [m for name, m in MATRIX.items() if name.startswith("odd-username")]
    metadata = [manifests(s, "ns", EXTENDED_RESOURCES).pod["metadata"] for s in pods]
    values = [m["labels"]["jovial.user"] for m in metadata]
    assert len(set(values)) == len(values)
    assert [m["annotations"]["jovial.user"] for m in metadata] == [s.username for s in pods]
    assert manifests(MATRIX["plain"], "ns", EXTENDED_RESOURCES).pod["metadata"]["labels"]["jovial.user"] == "alice"


def test_the_label_rules_themselves() -> None:
    assert is_label_value("") and is_label_value("a.b_c-d") and not is_label_value("-a") and not is_label_value("x" * 64)
    assert is_label_key("jovial.fs") and is_label_key("example.org/pool") and is_label_key("nvidia.com/gpu.present")
    assert not is_label_key("Example.org/pool") and not is_label_key("a/b/c") and not is_label_key("pool-")


def test_a_gpu_becomes_the_sites_extended_resource_with_request_equal_to_limit() -> None:
    resources = manifests(MATRIX["profile-gpu"], "ns", EXTENDED_RESOURCES).pod["spec"]["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "1"
    with pytest.raises(LaunchError, match="'NVIDIA-GPU' has no Kubernetes name: add it to kubernetes_extended_resources"):
        manifests(MATRIX["profile-gpu"], "ns", {})


def test_an_invalid_node_label_is_refused_with_its_name() -> None:
    with pytest.raises(LaunchError, match="'bad key!' is not a valid Kubernetes label key"):
        manifests(spec(node_labels={"bad key!": "x"}), "ns", EXTENDED_RESOURCES)
    with pytest.raises(LaunchError, match="the value 'two words' of 'pool'"):
        manifests(spec(node_labels={"pool": "two words"}), "ns", EXTENDED_RESOURCES)


def test_a_limit_without_reservation_requests_nothing_and_no_limit_means_no_resources() -> None:
    small = manifests(spec(resources=PROFILES["small"]), "ns", EXTENDED_RESOURCES).pod["spec"]["containers"][0]["resources"]
    assert small == {"limits": {"cpu": "1000m", "memory": str(2 * 2**30)}, "requests": {"cpu": "0m", "memory": "0"}}
    none = manifests(spec(resources=PROFILES["unlimited"]), "ns", EXTENDED_RESOURCES).pod["spec"]["containers"][0]
    assert none["resources"] == {}


@pytest.mark.parametrize("resources", [ResourceSpec(cpu_limit=1e-4), ResourceSpec(cpu_limit=1.0, cpu_reservation=1e-4)])
def test_a_cpu_amount_that_would_be_0_millicores_is_refused_not_sent_as_no_limit(resources: ResourceSpec) -> None:
    with pytest.raises(SiteMisconfigured, match="0.0001 cores is less than 1 millicore"):
        manifests(spec(resources=resources), "ns", EXTENDED_RESOURCES)
