"""Usernames and object names: validate the raw username, and derive the one DNS-safe object name.

The object name (service, pod, ...) is a DNS label: lowercase letters, digits and '-', at most 63
characters, starting with a letter. A username that is already such a label keeps its name
(`jupyter-alice`); anything else (capitals, dots, unicode, named servers, very long names) gets a
readable slug plus `--` and a hash of the exact raw names. Plain names never contain `--`, so the
two kinds cannot collide, and hashed names differ whenever the raw names do: the hash has 128 bits
(HASH_LENGTH hex digits), so that no one can find two (user, server) pairs with the same name
("john-smith"/"analysis" and "john"/"smith-analysis" share their slug), and the slug gets what is
left of the 63 characters. Names are not trusted on their own either: backends check an object's
jovial.user and jovial.server labels before they report on it or remove it.

Servers started before the hash grew keep their (shorter) names: the spawner's state holds the name
of a running server (DockerSpawner's `object_name`), and only a new start takes the name made here.
"""

import hashlib
import re
import unicodedata

from .errors import InvalidUsername

MAX_USERNAME_LENGTH = 64
MAX_OBJECT_NAME_LENGTH = 63
OBJECT_NAME_PREFIX = "jupyter-"
HASH_LENGTH = 32  # hex digits: 128 bits

_PLAIN_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def validate_username(username: str) -> str:
    """Return `username` if it can name a directory and a service safely, else raise."""
    if not username:
        raise InvalidUsername("The username is empty.")
    if len(username) > MAX_USERNAME_LENGTH:
        raise InvalidUsername(
            f"The username is {len(username)} characters long; at most {MAX_USERNAME_LENGTH} are allowed."
        )
    if "\0" in username:
        raise InvalidUsername("The username contains a NUL character.")
    if "/" in username:
        raise InvalidUsername(f"The username {username!r} contains '/'.")
    if ":" in username:
        raise InvalidUsername(f"The username {username!r} contains ':', which would break its line in /etc/passwd.")
    if "," in username:
        raise InvalidUsername(f"The username {username!r} contains ',', which would break its group lines in /etc/group.")
    if username in (".", ".."):
        raise InvalidUsername(f"The username {username!r} is not a valid directory name.")
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in username):
        raise InvalidUsername(f"The username {username!r} contains whitespace or control characters.")
    return username


def is_safe_path_component(name: str) -> bool:
    """Whether `name` (e.g. a group name from LDAP) can be one path component as it is."""
    try:
        validate_username(name)
    except InvalidUsername:
        return False
    return True


def _slug(text: str, limit: int) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return _NOT_SLUG.sub("-", ascii_text).strip("-")[:limit].strip("-") or "x"


def server_object_name(username: str, server_name: str = "") -> str:
    """The DNS-safe, collision-free name of the objects made for one user's (named) server."""
    body_limit = MAX_OBJECT_NAME_LENGTH - len(OBJECT_NAME_PREFIX)
    if not server_name and _PLAIN_NAME.fullmatch(username) and len(username) <= body_limit:
        return OBJECT_NAME_PREFIX + username
    digest = hashlib.sha256(f"{username}\0{server_name}".encode()).hexdigest()[:HASH_LENGTH]
    slug_room = body_limit - len("--") - HASH_LENGTH
    if server_name:
        half = (slug_room - 1) // 2
        slug = f"{_slug(username, half)}-{_slug(server_name, half)}"
    else:
        slug = _slug(username, slug_room)
    return f"{OBJECT_NAME_PREFIX}{slug}--{digest}"
