"""ServerSpecs for tests that drive a backend directly on the real swarm (no hub in between)."""

import dataclasses
import os
from pathlib import Path

import docker

from jovial.identity import identity_from_mapping
from jovial.spec import ResourceSpec, ServerSpec, SiteSettings, build_server_spec
from jovial.storage import ensure_home

FS_ROOT = Path(os.environ.get("JOVIAL_FS_ROOT", "/var/lib/jovial/lustre"))
TEST_USER = "jovial-test"
TEST_UID = 19001


def singleuser_image() -> str:
    return docker.from_env().images.get(f"jovial/singleuser:{os.environ.get('JOVIAL_TAG', 'dev')}").id


def site_settings(**changes: object) -> SiteSettings:
    site = SiteSettings(
        image=singleuser_image(),
        network=os.environ.get("JOVIAL_NETWORK", "jovial"),
        port=8888,
        home_source_template=f"{FS_ROOT}/home/{{username}}",
        home_target_template="/home/{username}",
        node_labels={"jovial.fs": "lustre"},
        resources=ResourceSpec(cpu_limit=0.5, mem_limit=512 * 2**20),
    )
    return dataclasses.replace(site, **changes)


def server_spec(
    name: str, site: SiteSettings | None = None, command: tuple[str, ...] | None = None, project_groups: tuple[str, ...] = ()
) -> ServerSpec:
    """A spec for the test user (uid 19001) whose home exists; the default command serves HTTP on 8888."""
    site = site or site_settings()
    identity = identity_from_mapping(TEST_USER, {"uid": TEST_UID, "gid": TEST_UID, "groups": {"testers": 19002}})
    ensure_home(str(FS_ROOT), site.home_source_template.format(username=TEST_USER), TEST_UID, TEST_UID)
    serve = ("python3", "-m", "http.server", "8888", "--bind", "0.0.0.0")
    labels_user = {"JUPYTERHUB_USER": TEST_USER}
    return build_server_spec(
        site, identity, name=name, server_name="", env=labels_user, command=command or serve, project_groups=project_groups
    )
