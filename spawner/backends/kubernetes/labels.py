"""Kubernetes label keys and values: check the site's, and escape Jovial's own. Pure.

A label value is at most 63 characters of letters, digits, '-', '_' and '.', beginning and
ending with a letter or digit (or empty). Object names are already DNS labels (`names.py`), but
usernames and server names may be anything a hub accepts: those that are not valid label values
as they are become a readable slug, `--` and a hash of the exact text. A value kept as it is
never contains `--`, so the two kinds cannot collide. The exact text goes into an annotation.
"""

import hashlib
import re

from ...errors import LaunchError

MAX_VALUE_LENGTH = 63
HASH_LENGTH = 10

_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_KEY_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_NOT_VALUE = re.compile(r"[^A-Za-z0-9_.]+")


def is_label_value(text: str) -> bool:
    return len(text) <= MAX_VALUE_LENGTH and _VALUE.fullmatch(text) is not None


def is_label_key(key: str) -> bool:
    """`name` or `prefix/name`: a name of at most 63 characters, a prefix that is a DNS subdomain."""
    prefix, _, name = key.rpartition("/")
    if len(name) > MAX_VALUE_LENGTH or not _KEY_NAME.fullmatch(name):
        return False
    if "/" in key:
        labels = prefix.split(".")
        return len(prefix) <= 253 and all(len(p) <= 63 and _DNS_LABEL.fullmatch(p) for p in labels)
    return True


def escaped_value(text: str) -> str:
    """`text` as a label value: itself if it is one (and has no `--`), else slug--hash."""
    if is_label_value(text) and "--" not in text:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]
    slug = _NOT_VALUE.sub("-", text).strip("-_.")[: MAX_VALUE_LENGTH - len("--") - HASH_LENGTH].strip("-_.")
    return f"{slug}--{digest}" if slug else f"x--{digest}"


def checked_labels(labels: dict[str, str], what: str) -> dict[str, str]:
    """The site's labels (node labels) unchanged if Kubernetes accepts them, else a clear error."""
    for key, value in labels.items():
        if not is_label_key(key):
            raise LaunchError(f"{what}: {key!r} is not a valid Kubernetes label key.")
        if not is_label_value(value):
            raise LaunchError(f"{what}: the value {value!r} of {key!r} is not a valid Kubernetes label value.")
    return labels
