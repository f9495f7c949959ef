"""JovialSpawner's settings as a site writes them: refused when Swarm cannot honour them, layered per
group/user/profile with callables (sync and async), identities from a static table, the spawn form.
No cluster needed: nothing here starts a server."""

from types import SimpleNamespace

import pytest
from dockerspawner import SwarmSpawner
from traitlets.config import Config

from jovial.errors import OptionsError, SiteMisconfigured
from jovial.settings import JovialSettings
from jovial.spawner import UNSUPPORTED_SETTINGS, JovialSpawner


def make_spawner(user_options: dict | None = None, **settings: object) -> JovialSpawner:
    """A spawner with these settings whose start names `user_options` (no request: as code starts it)."""
    config = Config()
    for key, value in settings.items():
        section, _, name = key.rpartition("__")
        config[section or "JovialSpawner"][name] = value
    user = SimpleNamespace(name="alice", url="/user/alice/", server=None, escaped_name="alice")
    spawner = JovialSpawner(config=config, user=user, _deprecated_db_session=None)
    spawner.user_options = user_options or {}
    return spawner


ALICE = {"alice": {"uid": 10001, "gid": 10001, "name": "Alice", "groups": {"astro": 20001, "gpu-users": 20003}}}


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("JovialSpawner__volumes", {"/data": "/data"}, "JovialSpawner.volumes (use home_path_template"),
        ("DockerSpawner__extra_host_config", {"privileged": True}, "DockerSpawner.extra_host_config"),
        ("SwarmSpawner__extra_placement_spec", {"constraints": []}, "SwarmSpawner.extra_placement_spec (use node_labels)"),
        ("JovialSpawner__allowed_images", "*", "allowed_images = '*'"),
        ("DockerSpawner__image_whitelist", ["jovial/singleuser:dev"], "DockerSpawner.image_whitelist (use allowed_images)"),
        ("JovialSpawner__container_prefix", "jupyter", "JovialSpawner.container_prefix (use nothing: object names"),
        ("SwarmSpawner__remove_containers", False, "SwarmSpawner.remove_containers (use nothing: a stopped server's service"),
        ("JupyterHub__internal_ssl", True, "JupyterHub.internal_ssl (use TLS at the site's load balancer"),
    ],
)
def test_settings_swarm_cannot_honour_are_refused_by_name(key: str, value: object, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")):
        make_spawner(**{key: value})


# Every setting JovialSpawner inherits from JupyterHub's Spawner and dockerspawner, that it does
# not refuse (UNSUPPORTED_SETTINGS), and how it is honoured. A setting a new dockerspawner or
# JupyterHub adds fails the test below until someone decides which it is.
HONOURED = {
    "image": "the default image (spec.py)",
    "allowed_images": "the images users may choose (choices.py)",
    "network_name": "the users' overlay network (spec.py)",
    "cpu_limit": "the base layer of the limits (choices.py)", "cpu_guarantee": "the same",
    "mem_limit": "the same", "mem_guarantee": "the same",
    "port": "the port the server listens on (spec.py)",
    "ip": "where the server listens in its container (JupyterHub's get_args)",
    "args": "JupyterHub's get_args, after cmd", "debug": "JupyterHub's get_args",
    "default_url": "JupyterHub's get_args", "notebook_dir": "JupyterHub's get_args",
    "environment": "JupyterHub's get_env", "env_keep": "JupyterHub's get_env",
    "disable_user_config": "JupyterHub's get_env", "hub_connect_url": "JupyterHub's get_env",
    "start_timeout": "Jovial's own start deadline, before the hub's", "http_timeout": "the hub's wait for a server",
    "poll_interval": "the hub's polls", "poll_jitter": "the hub's polls",
    "consecutive_failure_limit": "the hub", "options_form": "the hub's spawn page",
    "options_from_form": "the hub's spawn page", "pre_spawn_hook": "the hub, before start",
    "post_stop_hook": "the hub, after stop", "auth_state_hook": "the hub, before start",
    "progress_ready_hook": "the hub's progress", "oauth_client_allowed_scopes": "the hub's OAuth client",
    "oauth_roles": "the hub's OAuth client", "server_token_scopes": "the hub's token for the server",
    "client_kwargs": "the Docker client (Swarm only; refused on Kubernetes)",
    "tls_config": "the same", "tls": "the same", "tls_verify": "the same", "tls_ca": "the same",
    "tls_cert": "the same", "tls_key": "the same", "tls_assert_hostname": "the same",
    "use_docker_client_env": "the same",
}
HARMLESS = {
    "ssl_alt_names": "used only with internal_ssl, which is refused",
    "ssl_alt_names_include_local": "used only with internal_ssl, which is refused",
}


def test_every_inherited_setting_is_honoured_refused_or_harmless() -> None:
    own = {*JovialSettings.class_traits(config=True), *JovialSpawner.class_own_traits(config=True)}
    inherited = set(SwarmSpawner.class_traits(config=True)) - own
    undecided = inherited - UNSUPPORTED_SETTINGS.keys() - HONOURED.keys() - HARMLESS.keys()
    assert not undecided, f"inherited settings neither honoured, refused nor harmless: {sorted(undecided)}"
    assert not (HONOURED.keys() | HARMLESS.keys()) & UNSUPPORTED_SETTINGS.keys()
    assert (HONOURED.keys() | HARMLESS.keys()) <= inherited, "a setting listed here is no longer inherited"


@pytest.mark.parametrize("name", sorted(UNSUPPORTED_SETTINGS))
def test_each_refused_setting_stops_the_hub_by_name(name: str) -> None:
    config = Config()
    config.JovialSpawner[name] = {}  # set at all: the hub's config check looks at names, not values
    with pytest.raises(ValueError, match=f"JovialSpawner.{name} \\(use "):
        JovialSpawner.check_config(config)


def test_a_stopped_server_does_not_resume_so_the_hub_revokes_its_token() -> None:
    """JupyterHub deletes a stopped server's API token and OAuth client only when it will not resume."""
    assert make_spawner().will_resume is False


def test_the_hub_config_check_refuses_before_any_spawner_exists() -> None:
    config = Config()
    config.JovialSpawner.extra_task_spec = {"restart_policy": None}
    config.JovialSpawner.profiles = [{"name": "x"}]
    with pytest.raises(ValueError, match="JovialSpawner.extra_task_spec"):
        JovialSpawner.check_config(config)
    bad_profile = Config()
    bad_profile.JovialSpawner.profiles = [{"name": "x", "gpus": 1}]
    with pytest.raises(ValueError, match="unknown setting\\(s\\) \\['gpus'\\]"):
        JovialSpawner.check_config(bad_profile)
    JovialSpawner.check_config(Config())  # nothing set: fine


async def test_a_callable_allowed_images_returning_star_is_refused_at_spawn() -> None:
    spawner = make_spawner({"image": "anything"}, identities=ALICE, allowed_images=lambda spawner: "*")
    with pytest.raises(OptionsError, match="allowed_images is '\\*'"):
        await spawner.server_settings(await spawner.resolve_identity("alice"))


def test_unknown_keys_in_group_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown setting\\(s\\) \\['privileged'\\]"):
        make_spawner(group_settings={"astro": {"privileged": True}})


async def test_layers_with_sync_and_async_callables() -> None:
    async def gpu_labels(spawner: JovialSpawner) -> dict:
        return {"gpu": "yes"}

    spawner = make_spawner(
        {"profile": "big"},
        identities=ALICE,
        image="jovial/singleuser:dev",
        cpu_limit=1.0,
        group_settings={"gpu-users": {"node_labels": gpu_labels, "generic_resources": {"NVIDIA-GPU": 1}}},
        user_settings={"alice": {"image": lambda spawner: f"jovial/{spawner.user.name}:dev"}},
        profiles=[{"name": "small", "cpu_limit": 1}, {"name": "big", "cpu_limit": 4, "mem_limit": "8G"}],
    )
    identity = await spawner.resolve_identity("alice")
    site = spawner.site_settings(await spawner.server_settings(identity))
    assert site.image == "jovial/alice:dev"
    assert site.node_labels == {"jovial.fs": "lustre", "gpu": "yes"}
    assert (site.resources.cpu_limit, site.resources.mem_limit) == (4, 8 * 2**30)
    assert site.resources.generic == (("NVIDIA-GPU", 1),)


async def test_rest_api_options_are_validated_on_the_server() -> None:
    spawner = make_spawner({"image": "evil/miner"}, identities=ALICE, allowed_images={"minimal": "jovial/singleuser:dev"})
    with pytest.raises(OptionsError, match="'evil/miner' is not offered"):
        await spawner.server_settings(await spawner.resolve_identity("alice"))


async def test_the_form_offers_the_users_profiles_and_the_images() -> None:
    spawner = make_spawner(
        identities=ALICE,
        allowed_images=["jovial/singleuser:dev", "jovial/astro:dev"],
        profiles=[
            {"name": "small"}, {"name": "gpu", "display_name": "GPU <1>", "groups": ["gpu-users"]}, {"name": "staff", "groups": ["staff"]}
        ],
    )
    form = await spawner.get_options_form()
    assert 'value="gpu">GPU &lt;1&gt;</option>' in form and "staff" not in form
    assert 'value="jovial/astro:dev"' in form
    assert spawner.options_from_form({"profile": ["gpu"], "image": ["jovial/astro:dev"], "x": ["y"]}) == {
        "profile": "gpu",
        "image": "jovial/astro:dev",
    }


async def test_no_choices_means_no_form() -> None:
    assert await make_spawner(identities=ALICE).get_options_form() == ""


async def test_a_group_name_that_would_leave_the_projects_directory_is_not_mounted(tmp_path) -> None:
    (tmp_path / "projects" / "astro").mkdir(parents=True)
    (tmp_path / "home" / "bob").mkdir(parents=True)
    groups = {"astro": 20001, "../home/bob": 20009}
    spawner = make_spawner(
        identities={"alice": {"uid": 10001, "gid": 10001, "groups": groups}},
        shared_fs_root=str(tmp_path),
        project_path_template=f"{tmp_path}/projects/{{group}}",
    )
    assert await spawner._project_groups(await spawner.resolve_identity("alice")) == ["astro"]


def test_the_server_is_told_the_limits_it_really_got() -> None:
    from jovial.spawner import _resource_env
    from jovial.spec import ResourceSpec

    assert _resource_env(ResourceSpec(cpu_limit=4.0, mem_limit=8 * 2**30)) == {"CPU_LIMIT": "4.0", "MEM_LIMIT": str(8 * 2**30)}


def remembered_by_the_hub(spawner: JovialSpawner, options: dict) -> JovialSpawner:
    """The spawner as JupyterHub hands it a REST start with an empty body: the previous options."""
    spawner.user_options = options
    spawner.orm_spawner = SimpleNamespace(user_options=options, server=None, name="")
    spawner.handler = SimpleNamespace(get_server_json_body=lambda: {"display_name": None, "user_options": None})
    return spawner


SIZES = [{"name": "small", "cpu_limit": 1}, {"name": "large", "cpu_limit": 2}]


async def test_a_remembered_choice_the_site_no_longer_offers_is_dropped_with_a_progress_message() -> None:
    spawner = remembered_by_the_hub(make_spawner(identities=ALICE, profiles=SIZES), {"profile": "retired"})
    site = spawner.site_settings(await spawner.server_settings(await spawner.resolve_identity("alice")))
    assert site.resources.cpu_limit == 1  # the default profile
    assert [e["message"] for e in spawner._events] == [
        "Your previous choice profile = 'retired' is not possible any more (Unknown profile 'retired'; "
        "choose one of ['small', 'large']), so the site's default is used."
    ]


async def test_a_remembered_choice_still_offered_is_used_and_selected_in_the_form() -> None:
    spawner = remembered_by_the_hub(make_spawner(identities=ALICE, profiles=SIZES), {"profile": "large"})
    site = spawner.site_settings(await spawner.server_settings(await spawner.resolve_identity("alice")))
    assert site.resources.cpu_limit == 2 and spawner._events == []
    form = await spawner.get_options_form()
    assert '<option value="large" selected>' in form and '<option value="small">' in form


async def test_the_form_says_which_remembered_choice_was_dropped_and_selects_the_default() -> None:
    spawner = remembered_by_the_hub(make_spawner(identities=ALICE, profiles=SIZES), {"profile": "retired"})
    form = await spawner.get_options_form()
    assert "Your previous choice profile = &#x27;retired&#x27; is not possible any more" in form
    assert " selected" not in form


async def test_a_start_request_naming_a_choice_not_offered_is_refused() -> None:
    spawner = remembered_by_the_hub(make_spawner(identities=ALICE, profiles=SIZES), {"profile": "retired"})
    spawner.handler = SimpleNamespace(get_server_json_body=lambda: {"display_name": None, "user_options": {"profile": "retired"}})
    with pytest.raises(OptionsError, match="Unknown profile 'retired'"):
        await spawner.server_settings(await spawner.resolve_identity("alice"))


@pytest.mark.parametrize(("section", "key", "value"), [("JovialSpawner", "cpu_limit", 1e-10), ("Spawner", "mem_limit", 0.5),
                                                         ("JovialSpawner", "cpu_guarantee", 0.0001)])
def test_a_site_limit_that_would_round_to_no_limit_stops_the_hub_at_start(section: str, key: str, value: float) -> None:
    config = Config()
    config[section][key] = value
    with pytest.raises(ValueError, match=f"JovialSpawner: {key} {value} is below the least a server can be given"):
        JovialSpawner.check_config(config)


async def test_a_callable_setting_that_would_round_to_no_limit_stops_the_spawn_with_a_clear_message() -> None:
    spawner = make_spawner(identities=ALICE, group_settings={"astro": {"cpu_limit": lambda spawner: 1e-10}})
    chosen = await spawner.server_settings(await spawner.resolve_identity("alice"))
    with pytest.raises(SiteMisconfigured, match="cpu_limit 1e-10 is below the least a server can be given, 0.001 core"):
        spawner.site_settings(chosen)
