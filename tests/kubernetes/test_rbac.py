"""The Kubernetes deployment files: the hub's RBAC (stacks/kubernetes/rbac.yaml) validates
strictly and grants exactly what the backend uses: every (resource, verb) of a whole start, failed start, status and removal, as the
fake API server (tests/kubernetes/fake_apiserver.py: NOT a cluster) saw them, and nothing more;
the example hub config (stacks/kubernetes/jupyterhub_config.py) passes the hub-start check."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from traitlets.config import Config

from tests.kubernetes.conftest import FakeCluster
from tests.kubernetes.matrix import spec
from tests.kubernetes.test_builder_validates import VERSIONS

RBAC = Path(__file__).parents[2] / "stacks" / "kubernetes" / "rbac.yaml"
# How the fake API server counts calls ("<METHOD> <resource>[ watch| item]") -> the RBAC verb.
VERBS = {("POST", ""): "create", ("GET", ""): "list", ("GET", "watch"): "watch", ("GET", "item"): "get", ("DELETE", "item"): "delete"}


def granted() -> set[tuple[str, str]]:
    role = next(d for d in yaml.safe_load_all(RBAC.read_text()) if d["kind"] == "Role")
    return {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}


def test_the_rbac_manifests_validate_strictly() -> None:
    for document in yaml.safe_load_all(RBAC.read_text()):
        for version in VERSIONS:
            kubernetes_validate.validate(document, version, strict=True)


async def test_the_role_grants_exactly_what_the_backend_uses(cluster: FakeCluster, make_backend) -> None:
    backend = make_backend(cluster)
    server, broken = spec("alice"), spec("bob", image="registry.example.org/missing:1")
    for each in (server, broken):
        await backend.launch(each)
    await backend.wait_running(server, lambda m, p: None, 30)
    try:
        await backend.wait_running(broken, lambda m, p: None, 30)
    except Exception:
        pass
    await backend.status(server.name, server.owner)
    for each in (server, broken):
        await backend.remove(each.name, each.owner)
    used = set()
    for call in cluster.api.calls:
        method, resource, *suffix = call.split()
        used.add((resource, VERBS[method, "".join(suffix)]))
    assert used == granted()


def test_the_example_hub_config_is_accepted_and_refused_with_a_swarm_only_setting(tmp_path: Path) -> None:
    """stacks/kubernetes/jupyterhub_config.py as a hub loads it (its secret files stood in)."""
    source = (RBAC.parent / "jupyterhub_config.py").read_text().replace("/run/secrets/", f"{tmp_path}/")
    (tmp_path / "proxy_token").write_text("t\n")
    config = Config()
    exec(compile(source, "jupyterhub_config.py", "exec"), {"get_config": lambda: config})
    assert config.JovialSpawner.orchestrator == "kubernetes"
    # Logins that never block the hub's event loop on a slow LDAP, as on Swarm (stock LDAPAuthenticator does).
    assert config.JupyterHub.authenticator_class == "jovial.authenticator.JovialLDAPAuthenticator"
    with pytest.raises(ValueError, match="on Kubernetes: JovialSpawner.network_name"):
        exec(compile(source + "\nc.JovialSpawner.network_name = 'jovial'\nJovialSpawner.check_config(c)\n", "cfg", "exec"),
             {"get_config": lambda: Config()})
