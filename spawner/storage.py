"""The user's home on the shared filesystem: made before the server exists, safely and idempotently.

Paths are walked from the filesystem root one component at a time with O_NOFOLLOW, so no
symlink (planted by a user or not) can lead the hub, which runs as root, outside that root.
"""

import errno
import os
import stat

from .errors import StorageError

HOME_MODE = 0o700


def _components_below(root: str, path: str) -> list[str]:
    root = os.path.normpath(root)
    path = os.path.normpath(path)
    if not os.path.isabs(root) or not path.startswith(root.rstrip("/") + "/"):
        raise StorageError(f"The home directory {path!r} is not inside the shared filesystem root {root!r}.")
    parts = os.path.relpath(path, root).split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"The home directory path {path!r} is not a plain path below {root!r}.")
    return parts


def _open_dir(name: str, dir_fd: int | None, shown: str) -> int:
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        raise StorageError(f"{shown} does not exist: is the shared filesystem mounted on the hub's node?") from None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise StorageError(f"{shown} is a symlink or not a directory; refusing to use it.") from None
        raise StorageError(f"{shown} cannot be opened: {e.strerror}.") from None


def _open_below(root: str, parts: list[str]) -> int:
    """An O_NOFOLLOW walk from `root` down `parts`; the caller closes the returned directory fd."""
    fd = _open_dir(root, None, f"The shared filesystem root {root}")
    shown = root.rstrip("/")
    try:
        for part in parts:
            shown = f"{shown}/{part}"
            parent_fd, fd = fd, _open_dir(part, fd, shown)
            os.close(parent_fd)
    except StorageError:
        os.close(fd)
        raise
    return fd


def ensure_home(root: str, path: str, uid: int, gid: int) -> bool:
    """Make `path` (below `root`) a directory owned uid:gid, mode 0700. True if it was created now.

    Every directory above it must already exist (the site makes them); an existing home is left
    as it is, but must be a real directory owned by `uid`.
    """
    *parents, leaf = _components_below(root, path)
    fd = _open_below(root, parents)
    try:
        return _make_leaf(fd, leaf, path, uid, gid)
    finally:
        os.close(fd)


def existing_directories(root: str, paths: list[str]) -> list[str]:
    """Those of `paths` that are real directories below `root`, reached without following a symlink."""
    found = []
    for path in paths:
        try:
            os.close(_open_below(root, _components_below(root, path)))
        except StorageError:
            continue
        found.append(path)
    return found


def _make_leaf(parent_fd: int, leaf: str, path: str, uid: int, gid: int) -> bool:
    try:
        os.mkdir(leaf, HOME_MODE, dir_fd=parent_fd)
    except FileExistsError:
        info = os.stat(leaf, dir_fd=parent_fd, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            raise StorageError(f"The home {path} exists but is a symlink or a file, not a directory; refusing to use it.") from None
        if info.st_uid != uid:
            raise StorageError(f"The home {path} belongs to uid {info.st_uid}, not to this user's uid {uid}.") from None
        return False
    except OSError as e:
        raise StorageError(f"The home {path} could not be created: {e.strerror}.") from None
    try:
        fd = _open_dir(leaf, parent_fd, path)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, HOME_MODE)
        finally:
            os.close(fd)
    except (OSError, StorageError) as e:
        os.rmdir(leaf, dir_fd=parent_fd)
        raise StorageError(f"The home {path} could not be given to uid {uid}: {e}.") from None
    return True
