"""What shapes one server: the site's settings, layered per group, per user and per profile, and
the user's own choices (profile, image, bounded resources), validated on the server side. Pure.

Layers, later ones winning: the spawner's settings -> `group_settings` of each of the user's
groups (sorted by name) -> `user_settings` of the user -> the chosen profile -> the user's
explicit resource choices. `node_labels` and `generic_resources` are merged key by key (a group
adds a placement requirement rather than replacing the site's); other keys are replaced.

Choices a start request makes are checked strictly (one not offered is refused). Choices the hub
remembers from the user's previous start are checked the same way, one by one, and those the site
no longer offers are dropped, each with a note saying why (`still_offered`).

Amounts of CPU and memory, in every layer, are at least 0.001 core and 1 byte (0 or None: none).
Less would round to 0 NanoCPUs, 0 millicores or 0 bytes, which Swarm and Kubernetes take for no
limit at all: such a setting stops the hub at start (`check_layer`), or, from a callable, the
spawn (`resource_spec`); such a user option is refused (`choose`).
"""

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jupyterhub.traitlets import ByteSpecification
from traitlets import TraitError

from .errors import OptionsError, SiteMisconfigured
from .spec import ResourceSpec

LAYERED_KEYS = frozenset(
    {"image", "cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee", "node_labels", "generic_resources"}
)
MERGED_KEYS = frozenset({"node_labels", "generic_resources"})
OPTION_KEYS = ("profile", "image", "cpu_limit", "mem_limit")


@dataclass(frozen=True)
class Profile:
    """A size/placement choice offered to users (e.g. small, large, gpu)."""

    name: str
    display_name: str
    settings: Mapping[str, Any]
    groups: frozenset[str] = field(default_factory=frozenset)

    def allows(self, groups: Iterable[str]) -> bool:
        return not self.groups or bool(self.groups & set(groups))


@dataclass(frozen=True)
class Maxima:
    """The most a user may ask for explicitly (None: explicit requests are not allowed)."""

    cpu_limit: float | None = None
    mem_limit: int | None = None


def check_layer(where: str, layer: Mapping[str, Any]) -> None:
    """Refuse unknown keys and unusable amounts in a settings layer (at startup, naming where they
    are); callables are checked when a spawn resolves them."""
    unknown = set(layer) - LAYERED_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {sorted(unknown)}; allowed: {sorted(LAYERED_KEYS)}")
    for key, value in layer.items():
        if key in RESOURCES and not callable(value):
            try:
                resource_amount(key, value)
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None


def parse_profiles(raw: Iterable[Mapping[str, Any]]) -> tuple[Profile, ...]:
    """Profiles from config: {'name', 'display_name'?, 'groups'?, and any layered setting}."""
    profiles = []
    for entry in raw:
        entry = dict(entry)
        name = entry.pop("name", None)
        if not name:
            raise ValueError(f"JovialSpawner.profiles: every profile needs a name: {entry}")
        display_name = entry.pop("display_name", name)
        groups = frozenset(entry.pop("groups", ()))
        check_layer(f"JovialSpawner.profiles[{name!r}]", entry)
        profiles.append(Profile(name, display_name, entry, groups))
    if len({p.name for p in profiles}) != len(profiles):
        raise ValueError("JovialSpawner.profiles: profile names must be unique")
    return tuple(profiles)


def _number(name: str, value: Any, parse: Callable[[Any], float]) -> float:
    """`value` parsed; too big to parse is infinity (over any maximum); not a number, or NaN, is refused."""
    try:
        number = parse(value)
    except OverflowError:
        return math.inf
    except (TypeError, ValueError, TraitError):  # TraitError: parse_bytes' "not a memory specification"
        number = math.nan
    if math.isnan(number):
        raise OptionsError(f"The server option {name} must be a number (or a size like 4G), not {value!r}.")
    return number


def parse_bytes(value: Any) -> int:
    """Bytes from a number or a size like '4G' (as JupyterHub's mem_limit)."""
    return int(ByteSpecification().validate(None, value))


@dataclass(frozen=True)
class Measure:
    """How an amount of a resource is read, the least a server can be given, and its unit."""

    parse: Callable[[Any], float]
    least: float
    least_text: str
    unit: str


CORES = Measure(float, 0.001, "0.001 core", "cores")  # Kubernetes' least: 1m
BYTES = Measure(parse_bytes, 1, "1 byte", "bytes")
RESOURCES = {"cpu_limit": CORES, "cpu_guarantee": CORES, "mem_limit": BYTES, "mem_guarantee": BYTES}


def resource_amount(key: str, value: Any) -> float | None:
    """The site's amount for `key` (one of RESOURCES) in cores or bytes; None for none (None or the
    number 0). ValueError for anything else that is not at least the least (see the module docstring)."""
    if value is None or (isinstance(value, int | float) and value == 0):
        return None
    measure = RESOURCES[key]
    try:
        amount = measure.parse(value)
    except (TypeError, ValueError, TraitError, OverflowError):
        raise ValueError(f"{key} {value!r} is not a usable number of {measure.unit}") from None
    if not amount >= measure.least:  # NaN too
        raise ValueError(
            f"{key} {value!r} is below the least a server can be given, {measure.least_text} (0 or None: none); "
            "less would mean no limit at all"
        )
    return amount


def _bytes(amount: float | None) -> int | None:
    """An amount of BYTES as its type: parse_bytes made it an int already."""
    return None if amount is None else int(amount)


def resource_spec(chosen: Mapping[str, Any]) -> ResourceSpec:
    """The resources of the server whose layered settings (callables resolved) are `chosen`;
    SiteMisconfigured for an amount that `resource_amount` refuses."""
    try:
        amounts = {key: resource_amount(key, chosen[key]) for key in RESOURCES}
    except ValueError as e:
        raise SiteMisconfigured(f"This site's settings for your server cannot be used: {e}. Tell an administrator.") from None
    return ResourceSpec(
        cpu_limit=amounts["cpu_limit"],
        cpu_reservation=amounts["cpu_guarantee"],
        mem_limit=_bytes(amounts["mem_limit"]),
        mem_reservation=_bytes(amounts["mem_guarantee"]),
        generic=tuple(sorted((chosen["generic_resources"] or {}).items())),
    )


def choose(
    options: Mapping[str, Any],
    profiles: tuple[Profile, ...],
    images: Mapping[str, str],
    maxima: Maxima,
    groups: Iterable[str],
) -> dict[str, Any]:
    """The settings layer of the user's choices, or OptionsError saying what is not offered."""
    groups = set(groups)
    unknown = set(options) - set(OPTION_KEYS)
    if unknown:
        raise OptionsError(f"Unknown server option(s) {sorted(unknown)}; this hub accepts {list(OPTION_KEYS)}.")
    layer: dict[str, Any] = {}
    offered = [p for p in profiles if p.allows(groups)]
    if "profile" in options or offered:
        name = options.get("profile", offered[0].name if offered else None)
        profile = next((p for p in profiles if p.name == name), None)
        if profile is None:
            raise OptionsError(f"Unknown profile {name!r}; choose one of {[p.name for p in offered]}.")
        if not profile.allows(groups):
            raise OptionsError(f"The profile {name!r} is only for members of {sorted(profile.groups)}.")
        layer.update(profile.settings)
    if "image" in options:
        if not isinstance(options["image"], str) or options["image"] not in images:
            raise OptionsError(f"The image {options['image']!r} is not offered here; choose one of {sorted(images)}.")
        layer["image"] = images[options["image"]]
    for key in ("cpu_limit", "mem_limit"):
        if key in options:
            measure = RESOURCES[key]
            value, most = _number(key, options[key], measure.parse), getattr(maxima, key)
            if most is None:
                raise OptionsError(f"This hub does not let users set {key}; choose a profile instead.")
            if value < measure.least:
                raise OptionsError(f"{key} must be at least {measure.least_text}, not {options[key]}.")
            if value > most:
                raise OptionsError(f"{key} {options[key]} is over this site's maximum of {most} {measure.unit}.")
            layer[key] = value
    return layer


def still_offered(
    remembered: Mapping[str, Any],
    profiles: tuple[Profile, ...],
    images: Mapping[str, str],
    maxima: Maxima,
    groups: Iterable[str],
) -> tuple[dict[str, Any], list[str]]:
    """The remembered choices that `choose` still accepts, and a note for each one it does not."""
    groups = list(groups)
    kept: dict[str, Any] = {}
    notes = []
    for key, value in remembered.items():
        try:
            choose({key: value}, profiles, images, maxima, groups)
        except OptionsError as e:
            why = e.jupyterhub_message.rstrip(".")
            notes.append(f"Your previous choice {key} = {value!r} is not possible any more ({why}), so the site's default is used.")
        else:
            kept[key] = value
    return kept, notes


def layered(
    base: Mapping[str, Any],
    group_settings: Mapping[str, Mapping[str, Any]],
    user_settings: Mapping[str, Any],
    choice: Mapping[str, Any],
    groups: Iterable[str],
) -> dict[str, Any]:
    """Combine the layers in order; see the module docstring."""
    merged = dict(base)
    layers = [group_settings[g] for g in sorted(set(groups)) if g in group_settings] + [user_settings, choice]
    for layer in layers:
        for key, value in layer.items():
            merged[key] = {**merged.get(key, {}), **value} if key in MERGED_KEYS else value
    return merged
