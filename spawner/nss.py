"""The user's passwd and group files, so `id` and `whoami` inside the container name the user. Pure."""

from .identity import PosixIdentity

_SYSTEM_PASSWD = "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
_SYSTEM_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def _field(text: str) -> str:
    """A passwd/group field: no separators or newlines can break the file's format."""
    return text.replace(":", " ").replace("\n", " ")


def passwd_file(identity: PosixIdentity, home: str, shell: str = "/bin/bash") -> str:
    """/etc/passwd with the system accounts and the user."""
    name = _field(identity.username)
    return f"{_SYSTEM_PASSWD}{name}:x:{identity.uid}:{identity.gid}:{_field(identity.display_name)}:{home}:{shell}\n"


def group_file(identity: PosixIdentity) -> str:
    """/etc/group with the system groups, the user's primary group and every group listing them."""
    name = _field(identity.username)
    lines = [f"{_field(identity.primary_group_name)}:x:{identity.gid}:{name}"]
    lines += [f"{_field(g.name)}:x:{g.gid}:{name}" for g in identity.groups if g.gid != identity.gid]
    return _SYSTEM_GROUP + "\n".join(lines) + "\n"
