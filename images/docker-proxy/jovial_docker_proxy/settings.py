"""The site's settings of the docker-proxy, read from its environment (docker-stack.yml). Pure: no I/O.

They are the variables the hub gets too, so that a site sets each once:
  JOVIAL_FS_ROOT            the shared filesystem's root: bind mounts must be it or below it
  JOVIAL_NETWORK            the users' overlay network: the only network a user server may join
  JOVIAL_SINGLEUSER_IMAGE   the images a user server may run (IDs or names, exactly as the hub
  JOVIAL_ASTRO_IMAGE        sends them; the second may be empty)
  JOVIAL_FS_LABEL,          the placement every user server must have: node.labels.<label>==<value>
  JOVIAL_FS_LABEL_VALUE
one for sites whose hub configuration offers more images (in allowed_images or a profile):
  JOVIAL_EXTRA_IMAGES       more images user servers may run, separated by spaces (may be empty)
  JOVIAL_MIN_ID             the least uid and gid (primary and supplementary) a user server may run
                            with (default 1000): the ids below are the nodes' system accounts and
                            groups, such as the docker group that may use the engine's socket
and one that is Jovial's own, not a site's:
  JOVIAL_OBJECT_PREFIX      how the names of user servers' services begin ("jupyter-", spawner/names.py;
                            the benchmarks' stock stack sets "stock-")
A missing or invalid value raises SettingsError naming the variable: the proxy does not start.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass

# Network names Docker keeps for itself: joining any of them would leave the users' overlay.
RESERVED_NETWORKS = frozenset({"host", "bridge", "none", "ingress", "docker_gwbridge"})
_NETWORK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_PREFIX = re.compile(r"[a-z][a-z0-9-]*-")
_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./:@-]*")


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable and what is wrong."""


@dataclass(frozen=True)
class Settings:
    """What the policy needs to know about the site."""

    fs_root: str
    network: str
    images: frozenset[str]
    object_prefix: str
    fs_label: str
    fs_label_value: str
    min_id: int = 1000

    @property
    def placement(self) -> str:
        """The placement constraint every user server must carry (as Jovial's builder writes it)."""
        return f"node.labels.{self.fs_label}=={self.fs_label_value}"


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} must be set (see the docker-proxy service in docker-stack.yml).")
    return value


def is_normal_absolute_path(path: str) -> bool:
    """Whether `path` is absolute and already normalised: no empty, '.' or '..' components (so no
    '//' and no trailing '/'), no NUL. "/" itself counts as normal."""
    if not path.startswith("/") or "\0" in path:
        return False
    return path == "/" or all(part not in ("", ".", "..") for part in path[1:].split("/"))


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """The settings in `env` (e.g. os.environ); SettingsError names the first bad one."""
    fs_root = _required(env, "JOVIAL_FS_ROOT")
    if not is_normal_absolute_path(fs_root) or fs_root == "/":
        raise SettingsError(
            f"JOVIAL_FS_ROOT must be an absolute, normalised path other than / (no '..', '.', '//' "
            f"or trailing '/'), not {fs_root!r}: bind mounts are allowed only at or below it."
        )
    network = _required(env, "JOVIAL_NETWORK")
    if not _NETWORK_NAME.fullmatch(network) or network in RESERVED_NETWORKS:
        raise SettingsError(
            f"JOVIAL_NETWORK must name the users' overlay network (not one of {sorted(RESERVED_NETWORKS)}), "
            f"not {network!r}."
        )
    images = {
        "JOVIAL_SINGLEUSER_IMAGE": [_required(env, "JOVIAL_SINGLEUSER_IMAGE")],
        "JOVIAL_ASTRO_IMAGE": [astro] if (astro := env.get("JOVIAL_ASTRO_IMAGE", "").strip()) else [],
        "JOVIAL_EXTRA_IMAGES": env.get("JOVIAL_EXTRA_IMAGES", "").split(),
    }
    for name, values in images.items():
        for image in values:
            if not _IMAGE.fullmatch(image):
                raise SettingsError(f"{name}: {image!r} is not an image ID or name.")
    prefix = _required(env, "JOVIAL_OBJECT_PREFIX")
    if not _PREFIX.fullmatch(prefix) or len(prefix) > 40:
        raise SettingsError(
            f"JOVIAL_OBJECT_PREFIX must be lowercase letters, digits and '-', start with a letter and end "
            f"with '-' (Jovial's is 'jupyter-'), not {prefix!r}."
        )
    fs_label = _required(env, "JOVIAL_FS_LABEL")
    if not _LABEL_KEY.fullmatch(fs_label):
        raise SettingsError(f"JOVIAL_FS_LABEL must be a node label key, not {fs_label!r}.")
    fs_label_value = _required(env, "JOVIAL_FS_LABEL_VALUE")
    if any(ch.isspace() or ch in "=!" for ch in fs_label_value):
        raise SettingsError(f"JOVIAL_FS_LABEL_VALUE must not contain whitespace, '=' or '!', not {fs_label_value!r}.")
    min_id = env.get("JOVIAL_MIN_ID", "").strip() or "1000"
    if not min_id.isdigit() or int(min_id) < 1:
        raise SettingsError(f"JOVIAL_MIN_ID must be a whole number of at least 1, not {min_id!r}.")
    return Settings(
        min_id=int(min_id),
        fs_root=fs_root,
        network=network,
        images=frozenset(image for values in images.values() for image in values),
        object_prefix=prefix,
        fs_label=fs_label,
        fs_label_value=fs_label_value,
    )
