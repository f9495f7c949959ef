"""What the hub may ask of the Docker engine. Pure: a call (method, path, query, body bytes), the
site's settings and the facts looked up for it -> Allowed, Refused (with the rule broken),
NotFound, or NeedFacts (which lookups must be made first; the caller makes them and asks again).

Reads: only those the spawners need (_ping, version, events, services, tasks, nodes, configs,
networks, a service's logs, an image's inspect). Writes, each checked against an allow-list of
what Jovial's builder (spawner/backends/swarm/builder.py) sends; any key not listed is refused:
  POST services/create  a user server: named <prefix><DNS label>, labelled jovial.managed=true,
                        jovial.object=<its name>, jovial.user; an allowed image; a non-root numeric
                        uid:gid and groups; CapabilityDrop ["ALL"] and nothing added; bind mounts
                        only at or below the shared filesystem root, tmpfs, nothing else; Jovial's
                        configs only; no secrets, privileges, sysctls, ulimits; only the users'
                        network (by name or ID), no aliases; no published ports; replicated, one
                        task; placed by the site's node label. Unversioned or at API 1.41 or later only
                        (below it the engine drops CapabilityDrop).
  POST configs/create   a server's passwd/group file: named jovial-<key>-<20 hex>, labelled
                        jovial.object=<a server's name> (and Jovial's other labels only); no
                        templating (a template can read secrets).
  DELETE services/<id>, configs/<id>
                        only objects that carry Jovial's labels and names (looked up first); the
                        call goes to the ID that was looked up, never to a name again.
Everything else (service and node updates, containers, exec, images, swarm, secrets, ...) is refused.

The body is parsed strictly (UTF-8, no duplicate keys, no NaN/Infinity) and the engine is sent the
parsed value re-serialised, so it reads exactly what was checked (Go's JSON matches keys without
regard to case; an exact allow-list of keys leaves it no other key to match).
"""

import base64
import binascii
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from .settings import Settings, is_normal_absolute_path

MANAGED_LABEL = "jovial.managed"
USER_LABEL = "jovial.user"
SERVER_LABEL = "jovial.server"
OBJECT_LABEL = "jovial.object"
JOVIAL_LABELS = frozenset({MANAGED_LABEL, USER_LABEL, SERVER_LABEL, OBJECT_LABEL})

CONFIG_NAME = re.compile(r"jovial-[a-z][a-z0-9]*-[0-9a-f]{20}")  # builder.config_args
MAX_OBJECT_NAME_LENGTH = 63  # a DNS label (spawner/names.py)
MAX_ID = 2**31 - 1  # uids and gids

_VERSION = re.compile(r"(?P<version>/v(?P<major>[0-9]{1,9})\.(?P<minor>[0-9]{1,9}))?(?P<rest>/.*)", re.DOTALL)
# Below API 1.41 the engine drops CapabilityDrop (and CapabilityAdd, Ulimits) from a service's spec
# (adjustForAPIVersion in moby's api/server/router/swarm/helpers.go): the checked ["ALL"] would not apply.
MIN_SERVICE_API_VERSION = (1, 41)
_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_READS = [
    re.compile(r"/(_ping|version|events)"),
    re.compile(rf"/(services|tasks|nodes|configs|networks)(/{_ID})?"),
    re.compile(rf"/services/{_ID}/logs"),
    re.compile(r"/images/[A-Za-z0-9_./:@-]+/json"),
]
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_POSITIVE = re.compile(r"[1-9][0-9]{0,9}")
_NUMERIC = re.compile(r"[0-9]{1,10}")
_CONSTRAINT = re.compile(r"\s*node\.labels\.([A-Za-z0-9][A-Za-z0-9_.-]*)\s*(==|!=)\s*([^\s=!]+)\s*")


# ---- what goes in and what comes out -----------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One HTTP request to the Docker API: `path` as sent (not decoded), `query` without '?'."""

    method: str
    path: str
    query: str = ""
    body: bytes = b""


@dataclass(frozen=True)
class Facts:
    """What was looked up through the socket for a call (a key missing: not looked up yet).

    networks: network name -> its ID (None: no such network)
    configs:  config ID -> the engine's inspection of it (None: no such config)
    objects:  "services/<id>" or "configs/<id>" -> the engine's inspection (None: not found)
    """

    networks: Mapping[str, str | None] = field(default_factory=dict)
    configs: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    objects: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Allowed:
    """Forward the call to `path` (with its query) on the engine, with `body` (None: no body).
    `write` describes an allowed write for the log ("" for reads)."""

    path: str
    body: bytes | None = None
    write: str = ""


@dataclass(frozen=True)
class Refused:
    """Answer 403 with {"message": reason}: the rule the call broke."""

    reason: str


@dataclass(frozen=True)
class NotFound:
    """Answer 404 with {"message": message}: the object to remove does not exist."""

    message: str


@dataclass(frozen=True)
class NeedFacts:
    """Look these up (see Facts), then decide again with what was found."""

    networks: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()


Decision = Allowed | Refused | NotFound | NeedFacts


class _Refusal(Exception):
    """Raised inside the checks; becomes Refused(reason)."""


def _refuse(reason: str) -> NoReturn:
    raise _Refusal(reason)


# ---- the entry point ---------------------------------------------------------------------------


def decide(call: Call, settings: Settings, facts: Facts | None = None) -> Decision:
    """Whether `call` may reach the engine, given the site's `settings` and what was looked up."""
    facts = facts or Facts()
    what = f"{call.method} {call.path}"
    if not call.path.startswith("/") or "%" in call.path or ".." in call.path or "//" in call.path:
        return Refused(f"{what}: encoded ('%'), relative, '..' or '//' paths are refused.")
    match = _VERSION.fullmatch(call.path)
    assert match is not None  # the path starts with "/"
    version, rest = match["version"] or "", match["rest"]
    try:
        if call.method in ("GET", "HEAD"):
            if any(pattern.fullmatch(rest) for pattern in _READS):
                return Allowed(call.path + (f"?{call.query}" if call.query else ""))
            _refuse(
                f"{what}: not one of the reads the spawner needs (_ping, version, events, services, tasks, "
                "nodes, configs, networks, a service's logs, an image's inspect)."
            )
        if call.method == "POST":
            if rest in ("/services/create", "/configs/create"):
                if call.query:
                    _refuse(f"{what}: a query ({call.query!r}) is refused on {rest[1:]}.")
                if rest == "/services/create" and version and (int(match["major"]), int(match["minor"])) < MIN_SERVICE_API_VERSION:
                    _refuse(
                        f"{what}: API versions below {'.'.join(map(str, MIN_SERVICE_API_VERSION))} are refused on "
                        "services/create (the engine drops CapabilityDrop from a spec sent with them)."
                    )
                body = parse_body(call.body, rest[1:])
                if rest == "/configs/create":
                    name = check_config(body, settings)
                    return Allowed(call.path, _serialise(body), f"config {name}")
                need = _Needs()
                name = check_service(body, settings, facts, need)
                if need:
                    return need.decision()
                return Allowed(call.path, _serialise(body), f"service {name}")
            if re.fullmatch(rf"/services/{_ID}/update", rest):
                _refuse(f"{what}: service updates are refused (a user server is removed and created again).")
            _refuse(f"{what}: only services/create and configs/create may be posted.")
        if call.method == "DELETE":
            removal = re.fullmatch(rf"/(services|configs)/({_ID})", rest)
            if not removal:
                _refuse(f"{what}: only services and configs may be removed.")
            if call.query:
                _refuse(f"{what}: a query ({call.query!r}) is refused on removals.")
            return _decide_removal(version, removal[1], removal[2], settings, facts)
        _refuse(f"{what}: the method {call.method} is refused.")
    except _Refusal as refusal:
        return Refused(str(refusal))


def parse_body(raw: bytes, where: str) -> Any:
    """The JSON body, parsed strictly: UTF-8, no duplicate keys, no NaN or Infinity."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            _refuse(f"{where}: the body repeats the key {next(k for k in keys if keys.count(k) > 1)!r}.")
        return dict(pairs)

    def no_constant(name: str) -> NoReturn:
        _refuse(f"{where}: the body contains {name}, which is not JSON.")

    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        _refuse(f"{where}: the body is not valid JSON ({e}).")
    except RecursionError:
        _refuse(f"{where}: the body is nested too deeply.")


def _serialise(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class _Needs:
    """The facts a check found missing (it goes on checking everything else meanwhile)."""

    def __init__(self) -> None:
        self.networks: list[str] = []
        self.configs: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.networks or self.configs)

    def decision(self) -> NeedFacts:
        return NeedFacts(networks=tuple(dict.fromkeys(self.networks)), configs=tuple(dict.fromkeys(self.configs)))


# ---- small checks --------------------------------------------------------------------------------


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        _refuse(f"{where} must be a JSON object.")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        _refuse(f"{where} must be a list.")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        _refuse(f"{where} must be a string.")
    return value


def _strings(value: Any, where: str) -> list[str]:
    items = _list(value, where)
    for i, item in enumerate(items):
        _string(item, f"{where}[{i}]")
    return items


def _count(value: Any, where: str, maximum: int = 2**63 - 1) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        _refuse(f"{where} must be a whole number from 0 to {maximum}.")
    return value


def _flag(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, bool):
        _refuse(f"{where} must be true or false.")


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def _keys(obj: Mapping[str, Any], where: str, allowed: Collection[str], forbidden: Mapping[str, str] | None = None) -> None:
    """Refuse keys that are forbidden (with their reason; None or empty counts as absent) and keys
    that are not on the allow-list."""
    for key, value in obj.items():
        if forbidden and key in forbidden:
            if not _empty(value):
                _refuse(f"{where}.{key} is refused: {forbidden[key]}")
        elif key not in allowed:
            _refuse(f"{where}: the key {key!r} is not allowed (allowed: {', '.join(sorted(allowed))}).")


def is_object_name(name: str, settings: Settings) -> bool:
    """Whether `name` is a user server's object name: the prefix, then a DNS label, 63 at most."""
    return (
        len(name) <= MAX_OBJECT_NAME_LENGTH
        and name.startswith(settings.object_prefix)
        and _DNS_LABEL.fullmatch(name[len(settings.object_prefix) :]) is not None
    )


def _object_name(value: Any, where: str, settings: Settings) -> str:
    name = _string(value, where)
    if not is_object_name(name, settings):
        _refuse(
            f"{where} {name!r} is not a user server's name ({settings.object_prefix!r} followed by lowercase "
            f"letters, digits and '-', {MAX_OBJECT_NAME_LENGTH} characters at most)."
        )
    return name


def _labels(value: Any, where: str, name: str, required: bool) -> None:
    """Jovial's labels only; jovial.managed is "true" and jovial.object the object's name; the
    service itself (`required`) must carry both and jovial.user."""
    if value is None:
        if required:
            _refuse(f"{where} are missing: a user server carries {MANAGED_LABEL}=true, {OBJECT_LABEL}=<its name> and {USER_LABEL}.")
        return
    labels = _object(value, where)
    for key, label in labels.items():
        if key not in JOVIAL_LABELS:
            _refuse(f"{where}: the label {key!r} is not one of Jovial's ({', '.join(sorted(JOVIAL_LABELS))}).")
        _string(label, f"{where}[{key!r}]")
    if required:
        for key in (MANAGED_LABEL, OBJECT_LABEL, USER_LABEL):
            if not labels.get(key):
                _refuse(
                    f"{where}: the label {key} is missing "
                    f"(a user server carries {MANAGED_LABEL}=true, {OBJECT_LABEL}=<its name> and {USER_LABEL})."
                )
    if MANAGED_LABEL in labels and labels[MANAGED_LABEL] != "true":
        _refuse(f"{where}[{MANAGED_LABEL!r}] must be 'true', not {labels[MANAGED_LABEL]!r}.")
    if OBJECT_LABEL in labels and labels[OBJECT_LABEL] != name:
        _refuse(f"{where}[{OBJECT_LABEL!r}] must be the service's name {name!r}, not {labels[OBJECT_LABEL]!r}.")


# ---- services/create ---------------------------------------------------------------------------

SERVICE_KEYS = {"Name", "Labels", "TaskTemplate", "Mode", "EndpointSpec"}
SERVICE_FORBIDDEN = {
    "Networks": "service-level networks are refused; a user server joins the users' network in TaskTemplate.Networks.",
    "UpdateConfig": "update settings are refused (user servers are never updated).",
    "RollbackConfig": "rollback settings are refused (user servers are never updated).",
}
TASK_KEYS = {"ContainerSpec", "Resources", "RestartPolicy", "Placement", "Networks"}
_PLUGINS = "only container tasks run user servers (a plugin runtime installs plugins with privileges)."
TASK_FORBIDDEN = {
    "Runtime": _PLUGINS,
    "PluginSpec": _PLUGINS,
    "NetworkAttachmentSpec": "only container tasks run user servers.",
    "LogDriver": "the engine's default log driver is used (log drivers and their options are refused).",
}
CONTAINER_KEYS = {
    "Image", "Command", "Args", "Env", "Dir", "User", "Groups", "Labels", "Mounts", "Configs", "Init",
    "CapabilityDrop", "ReadOnly",
}
CONTAINER_FORBIDDEN = {
    "CapabilityAdd": "no capability may be added (CapabilityDrop must be [\"ALL\"]).",
    "Privileges": "privilege settings (credential spec, SELinux, seccomp, AppArmor) are refused: "
    "they could only loosen the defaults.",
    "Secrets": "Docker secrets are the stack's (the hub's cookie secret, the proxy token, the LDAP password); "
    "a user server gets none.",
    "Sysctls": "kernel parameters (sysctls) are refused.",
    "Ulimits": "ulimits are refused.",
    "Devices": "devices are refused.",
    "Isolation": "isolation modes are refused.",
    "Hosts": "extra /etc/hosts entries are refused.",
}
MOUNT_KEYS = {"Type", "Source", "Target", "ReadOnly", "TmpfsOptions"}
MOUNT_FORBIDDEN = {
    "BindOptions": "bind options (propagation, recursion) are refused.",
    "VolumeOptions": "volume mounts and volume drivers are refused.",
}
CONFIG_REF_KEYS = {"ConfigID", "ConfigName", "File"}
CONFIG_REF_FORBIDDEN = {"Runtime": "only file configs are allowed."}
NETWORK_KEYS = {"Target"}
NETWORK_FORBIDDEN = {
    "Aliases": "network aliases are refused: an alias could take over another service's name "
    "(e.g. ldap) on the users' network.",
    "DriverOpts": "network driver options are refused.",
}


def check_service(body: Any, settings: Settings, facts: Facts, need: _Needs) -> str:
    """Refuse (raise) unless `body` is a user server as Jovial's builder makes it; the service's
    name. Facts that are missing are added to `need` instead."""
    where = "services/create"
    spec = _object(body, f"{where}: the body")
    _keys(spec, where, SERVICE_KEYS, SERVICE_FORBIDDEN)
    name = _object_name(spec.get("Name"), f"{where}: Name", settings)
    _labels(spec.get("Labels"), f"{where}: Labels", name, required=True)
    _check_mode(spec.get("Mode"), f"{where}: Mode")
    _check_endpoint(spec.get("EndpointSpec"), f"{where}: EndpointSpec")
    task = _object(spec.get("TaskTemplate"), f"{where}: TaskTemplate")
    _keys(task, f"{where}: TaskTemplate", TASK_KEYS, TASK_FORBIDDEN)
    _check_container(task.get("ContainerSpec"), f"{where}: TaskTemplate.ContainerSpec", name, settings, facts, need)
    _check_resources(task.get("Resources"), f"{where}: TaskTemplate.Resources")
    _check_restart(task.get("RestartPolicy"), f"{where}: TaskTemplate.RestartPolicy")
    _check_placement(task.get("Placement"), f"{where}: TaskTemplate.Placement", settings)
    _check_networks(task.get("Networks"), f"{where}: TaskTemplate.Networks", settings, facts, need)
    return name


def _check_mode(value: Any, where: str) -> None:
    if value is None:
        return  # the engine's default: replicated, one task
    mode = _object(value, where)
    _keys(mode, where, {"Replicated"})
    replicated = _object(mode.get("Replicated") or {}, f"{where}.Replicated")
    _keys(replicated, f"{where}.Replicated", {"Replicas"})
    if _count(replicated.get("Replicas", 1), f"{where}.Replicated.Replicas") > 1:
        _refuse(f"{where}.Replicated.Replicas: a user server runs one task at most.")


def _check_endpoint(value: Any, where: str) -> None:
    if value is None:
        return
    endpoint = _object(value, where)
    _keys(
        endpoint, where, {"Mode"},
        {"Ports": "published ports (ingress or host mode) are refused: user servers are reached through the "
         "proxy on the users' network only."},
    )
    if endpoint.get("Mode") not in (None, "vip", "dnsrr"):
        _refuse(f"{where}.Mode must be 'vip' or 'dnsrr', not {endpoint.get('Mode')!r}.")


def _check_container(
    value: Any, where: str, name: str, settings: Settings, facts: Facts, need: _Needs
) -> None:
    container = _object(value, where)
    _keys(container, where, CONTAINER_KEYS, CONTAINER_FORBIDDEN)
    image = _string(container.get("Image"), f"{where}.Image")
    if image not in settings.images:
        _refuse(f"{where}.Image {image!r} is not one of the site's images ({', '.join(sorted(settings.images))}).")
    _strings(container.get("Command"), f"{where}.Command")
    _strings(container.get("Args"), f"{where}.Args")
    _strings(container.get("Env"), f"{where}.Env")
    if container.get("Dir") is not None:
        _string(container["Dir"], f"{where}.Dir")
    _flag(container.get("Init"), f"{where}.Init")
    _flag(container.get("ReadOnly"), f"{where}.ReadOnly")
    _check_user(container.get("User"), f"{where}.User", settings.min_id)
    for i, group in enumerate(_strings(container.get("Groups"), f"{where}.Groups")):
        if not _POSITIVE.fullmatch(group) or int(group) > MAX_ID:
            _refuse(f"{where}.Groups[{i}] {group!r} must be a numeric gid other than 0.")
        if int(group) < settings.min_id:
            _refuse(f"{where}.Groups[{i}] {group} is below the least id {settings.min_id} (JOVIAL_MIN_ID): " + _SYSTEM_IDS)
    if container.get("CapabilityDrop") != ["ALL"]:
        _refuse(f"{where}.CapabilityDrop must be [\"ALL\"], not {container.get('CapabilityDrop')!r}.")
    _labels(container.get("Labels"), f"{where}.Labels", name, required=False)
    for i, mount in enumerate(_list(container.get("Mounts"), f"{where}.Mounts")):
        _check_mount(mount, f"{where}.Mounts[{i}]", settings)
    for i, ref in enumerate(_list(container.get("Configs"), f"{where}.Configs")):
        _check_config_ref(ref, f"{where}.Configs[{i}]", name, facts, need)


_SYSTEM_IDS = ("the ids below are the nodes' system accounts and groups (such as the docker group, which may "
               "use the engine's socket, reachable through a symlink in the shared filesystem).")


def _check_user(value: Any, where: str, min_id: int) -> None:
    if value is None:
        _refuse(f"{where} is missing: a user server runs as a numeric uid:gid other than 0 (the image's user may be root).")
    user = _string(value, where)
    uid, _, gid = user.partition(":")
    if not (_POSITIVE.fullmatch(uid) and _POSITIVE.fullmatch(gid)) or max(int(uid), int(gid)) > MAX_ID:
        _refuse(f"{where} {user!r} must be a numeric uid:gid, neither of them 0 (never root, never a name).")
    if min(int(uid), int(gid)) < min_id:
        _refuse(f"{where} {user!r} is below the least id {min_id} (JOVIAL_MIN_ID): " + _SYSTEM_IDS)


def _check_mount(value: Any, where: str, settings: Settings) -> None:
    mount = _object(value, where)
    _keys(mount, where, MOUNT_KEYS, MOUNT_FORBIDDEN)
    target = _string(mount.get("Target"), f"{where}.Target")
    if not target.startswith("/"):
        _refuse(f"{where}.Target {target!r} must be an absolute path.")
    _flag(mount.get("ReadOnly"), f"{where}.ReadOnly")
    kind = mount.get("Type")
    if kind == "bind":
        if mount.get("TmpfsOptions") is not None:
            _refuse(f"{where}.TmpfsOptions are for tmpfs mounts only.")
        source = _string(mount.get("Source"), f"{where}.Source")
        root = settings.fs_root
        if not is_normal_absolute_path(source):
            _refuse(f"{where}.Source {source!r} is not an absolute, normalised path (no '..', '.', '//' or trailing '/').")
        if source != root and not source.startswith(root + "/"):
            _refuse(f"{where}.Source {source!r} is outside the shared filesystem root {root}: only it and paths below it may be bound.")
    elif kind == "tmpfs":
        if mount.get("Source") not in (None, ""):
            _refuse(f"{where}.Source must be empty for a tmpfs mount.")
        options = _object(mount.get("TmpfsOptions") or {}, f"{where}.TmpfsOptions")
        _keys(options, f"{where}.TmpfsOptions", {"SizeBytes", "Mode"})
        _count(options.get("SizeBytes"), f"{where}.TmpfsOptions.SizeBytes")
        _count(options.get("Mode"), f"{where}.TmpfsOptions.Mode", 0o7777)
    else:
        _refuse(f"{where}.Type {kind!r} is refused: only bind mounts below the shared filesystem root and tmpfs mounts.")


def _check_config_ref(value: Any, where: str, name: str, facts: Facts, need: _Needs) -> None:
    ref = _object(value, where)
    _keys(ref, where, CONFIG_REF_KEYS, CONFIG_REF_FORBIDDEN)
    config_name = _string(ref.get("ConfigName"), f"{where}.ConfigName")
    if not CONFIG_NAME.fullmatch(config_name):
        _refuse(f"{where}.ConfigName {config_name!r} is not one of Jovial's configs (jovial-<key>-<20 hex digits>).")
    config_id = _string(ref.get("ConfigID"), f"{where}.ConfigID")
    if not re.fullmatch(r"[A-Za-z0-9]+", config_id):
        _refuse(f"{where}.ConfigID {config_id!r} is not a config ID.")
    target = _object(ref.get("File"), f"{where}.File")
    _keys(target, f"{where}.File", {"Name", "UID", "GID", "Mode"})
    if not _string(target.get("Name"), f"{where}.File.Name").startswith("/"):
        _refuse(f"{where}.File.Name must be an absolute path.")
    for key in ("UID", "GID"):
        if target.get(key) is not None and not _NUMERIC.fullmatch(_string(target[key], f"{where}.File.{key}")):
            _refuse(f"{where}.File.{key} must be a numeric id.")
    _count(target.get("Mode"), f"{where}.File.Mode", 0o777)  # no setuid, setgid or sticky file
    if config_id not in facts.configs:
        need.configs.append(config_id)
        return
    found = facts.configs[config_id]
    spec = (found or {}).get("Spec") or {}
    if found is None or spec.get("Name") != config_name:
        _refuse(f"{where}: there is no config {config_id} named {config_name!r}.")
    if (spec.get("Labels") or {}).get(OBJECT_LABEL) != name:
        _refuse(f"{where}: the config {config_name!r} is not this server's (its label {OBJECT_LABEL} is not {name!r}).")


def _check_resources(value: Any, where: str) -> None:
    if value is None:
        return
    resources = _object(value, where)
    _keys(resources, where, {"Limits", "Reservations"})
    limits = _object(resources.get("Limits") or {}, f"{where}.Limits")
    _keys(limits, f"{where}.Limits", {"NanoCPUs", "MemoryBytes", "Pids"})
    for key, amount in limits.items():
        _count(amount, f"{where}.Limits.{key}")
    reservations = _object(resources.get("Reservations") or {}, f"{where}.Reservations")
    _keys(reservations, f"{where}.Reservations", {"NanoCPUs", "MemoryBytes", "GenericResources"})
    _count(reservations.get("NanoCPUs"), f"{where}.Reservations.NanoCPUs")
    _count(reservations.get("MemoryBytes"), f"{where}.Reservations.MemoryBytes")
    for i, generic in enumerate(_list(reservations.get("GenericResources"), f"{where}.Reservations.GenericResources")):
        at = f"{where}.Reservations.GenericResources[{i}]"
        resource = _object(generic, at)
        _keys(resource, at, {"DiscreteResourceSpec", "NamedResourceSpec"})
        for kind, detail in resource.items():
            _keys(_object(detail, f"{at}.{kind}"), f"{at}.{kind}", {"Kind", "Value"})


def _check_restart(value: Any, where: str) -> None:
    if value is None:
        return
    policy = _object(value, where)
    _keys(policy, where, {"Condition", "Delay", "MaxAttempts", "Window"})
    if policy.get("Condition") not in (None, "none", "on-failure", "any"):
        _refuse(f"{where}.Condition {policy.get('Condition')!r} is not none, on-failure or any.")
    for key in ("Delay", "MaxAttempts", "Window"):
        _count(policy.get(key), f"{where}.{key}")


def _check_placement(value: Any, where: str, settings: Settings) -> None:
    placement = _object(value, where) if value is not None else {}
    _keys(placement, where, {"Constraints"})
    constraints = _strings(placement.get("Constraints"), f"{where}.Constraints")
    parsed = []
    for i, constraint in enumerate(constraints):
        match = _CONSTRAINT.fullmatch(constraint)
        if not match:
            _refuse(
                f"{where}.Constraints[{i}] {constraint!r} is refused: only node.labels.<key>==<value> "
                "(or !=) constraints (no node.role, node.hostname, node.id, engine.labels)."
            )
        parsed.append(match.groups())
    if (settings.fs_label, "==", settings.fs_label_value) not in parsed:
        _refuse(
            f"{where}.Constraints must include {settings.placement!r}: user servers run only on the nodes that mount the shared filesystem."
        )


def _check_networks(value: Any, where: str, settings: Settings, facts: Facts, need: _Needs) -> None:
    networks = _list(value, where)
    if len(networks) != 1:
        _refuse(f"{where} must be exactly the users' network {settings.network!r}, not {len(networks)} networks.")
    network = _object(networks[0], f"{where}[0]")
    _keys(network, f"{where}[0]", NETWORK_KEYS, NETWORK_FORBIDDEN)
    target = _string(network.get("Target"), f"{where}[0].Target")
    if target == settings.network:
        return
    if settings.network not in facts.networks:
        if re.fullmatch(r"[a-z0-9]{25}|[0-9a-f]{64}", target):  # could be its ID (swarm's or local): look it up
            need.networks.append(settings.network)
            return
    elif target == facts.networks[settings.network]:
        return
    _refuse(f"{where}[0].Target {target!r} is not the users' network {settings.network!r} (by name or ID).")


# ---- configs/create ----------------------------------------------------------------------------


def check_config(body: Any, settings: Settings) -> str:
    """Refuse (raise) unless `body` is a server's passwd/group config as the builder makes it; its name."""
    where = "configs/create"
    spec = _object(body, f"{where}: the body")
    _keys(spec, where, {"Name", "Labels", "Data"}, {"Templating": "config templates are refused (a template can read secrets)."})
    name = _string(spec.get("Name"), f"{where}: Name")
    if not CONFIG_NAME.fullmatch(name):
        _refuse(f"{where}: Name {name!r} is not one of Jovial's config names (jovial-<key>-<20 hex digits>).")
    if spec.get("Labels") is None:
        _refuse(f"{where}: Labels are missing: a server's config carries {OBJECT_LABEL}=<the server's name>.")
    labels = _object(spec.get("Labels"), f"{where}: Labels")
    for key, label in labels.items():
        if key not in JOVIAL_LABELS:
            _refuse(f"{where}: Labels: the label {key!r} is not one of Jovial's ({', '.join(sorted(JOVIAL_LABELS))}).")
        _string(label, f"{where}: Labels[{key!r}]")
    if OBJECT_LABEL not in labels:
        _refuse(f"{where}: Labels: the label {OBJECT_LABEL} (the server the config belongs to) is missing.")
    if MANAGED_LABEL in labels and labels[MANAGED_LABEL] != "true":
        _refuse(f"{where}: Labels[{MANAGED_LABEL!r}] must be 'true', not {labels[MANAGED_LABEL]!r}.")
    _object_name(labels[OBJECT_LABEL], f"{where}: Labels[{OBJECT_LABEL!r}]", settings)
    try:
        base64.b64decode(_string(spec.get("Data"), f"{where}: Data"), validate=True)
    except binascii.Error:
        _refuse(f"{where}: Data must be base64.")
    return name


# ---- removals ----------------------------------------------------------------------------------


def _decide_removal(version: str, kind: str, object_id: str, settings: Settings, facts: Facts) -> Decision:
    """A removal goes ahead only for a user server's own objects, and to the ID that was looked up."""
    key = f"{kind}/{object_id}"
    if key not in facts.objects:
        return NeedFacts(objects=(key,))
    found = facts.objects[key]
    if found is None:
        return NotFound(f"{kind[:-1]} {object_id} not found")
    spec = found.get("Spec") or {}
    name = spec.get("Name")
    labels = spec.get("Labels") or {}
    real_id = found.get("ID")
    what = f"DELETE {kind}/{object_id}"
    if not isinstance(real_id, str) or not re.fullmatch(r"[A-Za-z0-9]+", real_id):
        return Refused(f"{what}: the engine's answer has no usable ID.")
    if not isinstance(name, str):
        return Refused(f"{what}: the engine's answer has no name.")
    if kind == "services":
        if not is_object_name(name, settings):
            return Refused(
                f"{what}: only user servers' services may be removed; {name!r} is not named like one "
                f"({settings.object_prefix}...)."
            )
        if labels.get(MANAGED_LABEL) != "true":
            return Refused(f"{what}: only user servers' services may be removed; {name!r} does not carry the label {MANAGED_LABEL}=true.")
        if labels.get(OBJECT_LABEL) != name:
            return Refused(f"{what}: only user servers' services may be removed; the label {OBJECT_LABEL} of {name!r} is not its name.")
    else:
        if not CONFIG_NAME.fullmatch(name):
            return Refused(
                f"{what}: only user servers' configs may be removed; {name!r} is not named like one (jovial-<key>-<20 hex digits>)."
            )
        owner = labels.get(OBJECT_LABEL)
        if not isinstance(owner, str) or not is_object_name(owner, settings):
            return Refused(
                f"{what}: only user servers' configs may be removed; "
                f"{name!r} does not carry the label {OBJECT_LABEL}=<a user server's name>."
            )
    return Allowed(f"{version}/{kind}/{real_id}", None, f"removal of {kind[:-1]} {name}")
