"""ServerSpecs for tests that drive a backend directly on the real swarm (no hub in between)."""

import dataclasses
import os

import docker

from jovial.identity import identity_from_mapping
from jovial.spec import ResourceSpec, ServerSpec, SiteSettings, build_server_spec
from jovial.storage import ensure_home
from tests.hub import FS_ROOT

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
    name: str,
    site: SiteSettings | None = None,
    command: tuple[str, ...] | None = None,
    project_groups: tuple[str, ...] = (),
    username: str = TEST_USER,
    uid: int = TEST_UID,
) -> ServerSpec:
    """A spec for a made-up user (by default the test user, uid 19001, in group testers) whose home
    exists; the default command serves HTTP on 8888."""
    site = site or site_settings()
    identity = identity_from_mapping(username, {"uid": uid, "gid": uid, "groups": {"testers": 19002}})
    ensure_home(str(FS_ROOT), site.home_source_template.format(username=username), uid, uid)
    serve = ("python3", "-m", "http.server", "8888", "--bind", "0.0.0.0")
    return build_server_spec(
        site, identity, name=name, server_name="", env={"JUPYTERHUB_USER": username}, command=command or serve,
        project_groups=project_groups,
    )
