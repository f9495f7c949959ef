"""Profiles, images and bounded resources chosen by users (server-side validation), and the layering
of site, group, user and profile settings."""

import re

import pytest

from jovial.choices import Maxima, choose, layered, parse_profiles, resource_spec, still_offered
from jovial.errors import OptionsError, SiteMisconfigured
from jovial.spec import ResourceSpec

PROFILES = parse_profiles(
    [
        {"name": "small", "display_name": "Small", "cpu_limit": 1, "mem_limit": "2G"},
        {"name": "large", "cpu_limit": 4, "mem_limit": "16G"},
        {"name": "gpu", "groups": ["gpu-users"], "generic_resources": {"NVIDIA-GPU": 1}, "node_labels": {"gpu": "yes"}},
    ]
)
IMAGES = {"minimal": "jovial/singleuser:dev", "astro": "jovial/astro:dev"}
MAXIMA = Maxima(cpu_limit=8, mem_limit=32 * 2**30)


def test_default_is_the_first_profile_offered() -> None:
    assert choose({}, PROFILES, IMAGES, MAXIMA, []) == {"cpu_limit": 1, "mem_limit": "2G"}


def test_profile_image_and_bounded_resources() -> None:
    layer = choose({"profile": "large", "image": "astro", "cpu_limit": "6"}, PROFILES, IMAGES, MAXIMA, [])
    assert layer == {"cpu_limit": 6.0, "mem_limit": "16G", "image": "jovial/astro:dev"}


@pytest.mark.parametrize(
    ("options", "groups", "complaint"),
    [
        ({"profile": "huge"}, [], "Unknown profile 'huge'; choose one of \\['small', 'large'\\]"),
        ({"profile": "gpu"}, [], "only for members of \\['gpu-users'\\]"),
        ({"image": "ubuntu"}, [], "The image 'ubuntu' is not offered here"),
        ({"cpu_limit": 64}, [], "cpu_limit 64 is over this site's maximum of 8"),
        ({"mem_limit": "1T"}, [], "mem_limit 1T is over this site's maximum"),
        ({"cpu_limit": "lots"}, [], "must be a number"),
        ({"cpu_limit": -1}, [], "cpu_limit must be at least 0.001 core, not -1"),
        ({"cpu_limit": 0}, [], "cpu_limit must be at least 0.001 core, not 0"),
        ({"cpu_limit": 1e-10}, [], "cpu_limit must be at least 0.001 core, not 1e-10"),  # would be NanoCPUs 0: no limit
        ({"mem_limit": 0.5}, [], "mem_limit must be at least 1 byte, not 0.5"),  # would be 0 bytes: no limit
        ({"cpu_limit": "nan"}, [], "cpu_limit must be a number .* not 'nan'"),
        ({"cpu_limit": 1e308}, [], "cpu_limit 1e\\+308 is over this site's maximum of 8 cores"),
        ({"cpu_limit": "1e999"}, [], "cpu_limit 1e999 is over this site's maximum"),
        ({"mem_limit": "lots"}, [], "mem_limit must be a number .* not 'lots'"),
        ({"mem_limit": "nanG"}, [], "mem_limit must be a number"),
        ({"mem_limit": "1e400G"}, [], "mem_limit 1e400G is over this site's maximum"),
        ({"mem_limit": 2**80}, [], "is over this site's maximum of 34359738368 bytes"),
        ({"image": ["ubuntu"]}, [], "The image \\['ubuntu'\\] is not offered here"),
        ({"image": {"name": "ubuntu"}}, [], "is not offered here"),
        ({"profile": ["small"]}, [], "Unknown profile \\['small'\\]"),
        ({"privileged": True}, [], "Unknown server option\\(s\\) \\['privileged'\\]"),
    ],
)
def test_what_is_not_offered_is_refused_clearly(options: dict, groups: list, complaint: str) -> None:
    with pytest.raises(OptionsError, match=complaint):
        choose(options, PROFILES, IMAGES, MAXIMA, groups)


def test_members_may_choose_their_groups_profile() -> None:
    assert choose({"profile": "gpu"}, PROFILES, IMAGES, MAXIMA, ["gpu-users"])["generic_resources"] == {"NVIDIA-GPU": 1}


def test_explicit_resources_are_refused_without_a_maximum() -> None:
    with pytest.raises(OptionsError, match="does not let users set mem_limit"):
        choose({"mem_limit": "1G"}, (), {}, Maxima(), [])


def test_no_profiles_and_no_options_is_an_empty_layer() -> None:
    assert choose({}, (), {}, Maxima(), []) == {}


@pytest.mark.parametrize(
    "raw",
    [[{"display_name": "no name"}], [{"name": "a"}, {"name": "a"}], [{"name": "a", "privileged": True}]],
)
def test_bad_profiles_are_refused_at_startup(raw: list) -> None:
    with pytest.raises(ValueError, match="JovialSpawner.profiles"):
        parse_profiles(raw)


def test_layers_later_win_and_placement_accumulates() -> None:
    base = {"image": "base", "cpu_limit": 1, "node_labels": {"jovial.fs": "lustre"}, "generic_resources": {}}
    groups = {"gpu-users": {"node_labels": {"gpu": "yes"}, "cpu_limit": 2}, "astro": {"image": "astro"}, "other": {"cpu_limit": 99}}
    merged = layered(base, groups, {"cpu_limit": 3}, {"generic_resources": {"NVIDIA-GPU": 1}}, ["gpu-users", "astro"])
    assert merged == {
        "image": "astro",
        "cpu_limit": 3,
        "node_labels": {"jovial.fs": "lustre", "gpu": "yes"},
        "generic_resources": {"NVIDIA-GPU": 1},
    }


def test_remembered_choices_still_offered_are_kept_and_the_others_dropped_with_the_reason() -> None:
    remembered = {"profile": "gpu", "image": "astro", "cpu_limit": 64, "mem_limit": "4G", "colour": "red"}
    kept, notes = still_offered(remembered, PROFILES, IMAGES, MAXIMA, [])
    assert kept == {"image": "astro", "mem_limit": "4G"}
    assert notes == [
        "Your previous choice profile = 'gpu' is not possible any more (The profile 'gpu' is only for members of ['gpu-users']), "
        "so the site's default is used.",
        "Your previous choice cpu_limit = 64 is not possible any more (cpu_limit 64 is over this site's maximum of 8 cores), "
        "so the site's default is used.",
        "Your previous choice colour = 'red' is not possible any more (Unknown server option(s) ['colour']; "
        "this hub accepts ['profile', 'image', 'cpu_limit', 'mem_limit']), so the site's default is used.",
    ]
    assert still_offered(remembered, PROFILES, IMAGES, MAXIMA, ["gpu-users"])[0]["profile"] == "gpu"


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("cpu_limit", 1e-10, "cpu_limit 1e-10 is below the least a server can be given, 0.001 core"),
        ("cpu_guarantee", 0.0004, "cpu_guarantee 0.0004 is below the least"),
        ("cpu_limit", -1, "cpu_limit -1 is below the least"),
        ("mem_limit", 0.5, "mem_limit 0.5 is below the least a server can be given, 1 byte"),
        ("mem_guarantee", "0.0001K", "mem_guarantee '0.0001K' is below the least"),
        ("mem_limit", "lots", "mem_limit 'lots' is not a usable number of bytes"),
    ],
)
def test_a_site_amount_that_would_round_to_no_limit_is_refused_at_hub_start(key: str, value: object, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"JovialSpawner.profiles['tiny']: {complaint}")):
        parse_profiles([{"name": "tiny", key: value}])


def test_site_amounts_of_none_or_0_mean_none_and_callables_are_checked_at_spawn() -> None:
    parse_profiles([{"name": "p", "cpu_limit": 0, "mem_limit": None, "cpu_guarantee": lambda spawner: 1e-10}])
    chosen = {"cpu_limit": 2, "cpu_guarantee": 0, "mem_limit": "2G", "mem_guarantee": None, "generic_resources": {"NVIDIA-GPU": 1}}
    assert resource_spec(chosen) == ResourceSpec(cpu_limit=2, mem_limit=2 * 2**30, generic=(("NVIDIA-GPU", 1),))
    with pytest.raises(SiteMisconfigured, match="cpu_guarantee 1e-10 is below the least .* Tell an administrator") as refused:
        resource_spec({**chosen, "cpu_guarantee": 1e-10})  # as a callable of the profile above returns it
    assert refused.value.status_code == 500
