"""Home provisioning on a real local directory: ownership, mode, idempotence, symlinks refused."""

import os
import stat
import subprocess
from pathlib import Path

import pytest

from jovial.errors import StorageError
from jovial.storage import ensure_home, existing_directories

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root (CI runs as root)")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path


def test_home_is_created_owned_by_the_user_mode_0700(root: Path) -> None:
    home = root / "home" / "alice"
    assert ensure_home(str(root), str(home), 10001, 10002) is True
    info = home.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (10001, 10002, 0o700)


def test_existing_home_is_left_alone(root: Path) -> None:
    home = root / "home" / "alice"
    ensure_home(str(root), str(home), 10001, 10001)
    (home / "notes.txt").write_text("kept")
    assert ensure_home(str(root), str(home), 10001, 10001) is False
    assert (home / "notes.txt").read_text() == "kept"


def test_home_owned_by_someone_else_is_refused(root: Path) -> None:
    home = root / "home" / "alice"
    ensure_home(str(root), str(home), 10002, 10002)
    with pytest.raises(StorageError, match="belongs to uid 10002"):
        ensure_home(str(root), str(home), 10001, 10001)


def test_home_symlink_out_of_the_root_is_refused(root: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    before = outside.stat()
    (root / "home" / "mallory").symlink_to(outside)
    with pytest.raises(StorageError, match="symlink"):
        ensure_home(str(root), str(root / "home" / "mallory"), 10001, 10001)
    after = outside.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)


def test_symlinked_parent_is_refused(root: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (root / "evil").symlink_to(outside)
    with pytest.raises(StorageError, match="symlink"):
        ensure_home(str(root), str(root / "evil" / "alice"), 10001, 10001)
    assert not (outside / "alice").exists()


@pytest.mark.parametrize("path", ["/elsewhere/alice", "{root}/home/../../etc", "{root}"])
def test_paths_outside_the_root_are_refused(root: Path, path: str) -> None:
    with pytest.raises(StorageError, match="not inside the shared filesystem root"):
        ensure_home(str(root), path.format(root=root), 10001, 10001)


def test_missing_parent_says_the_filesystem_may_not_be_mounted(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist: is the shared filesystem mounted"):
        ensure_home(str(tmp_path), str(tmp_path / "home" / "alice"), 10001, 10001)
    assert not (tmp_path / "home").exists()


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A real 1 MiB tmpfs with home/ in it, unmounted afterwards."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=64", "tmpfs", str(mount_point)], check=True)
    (mount_point / "home").mkdir()
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_read_only_filesystem_is_a_clear_error(small_tmpfs: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    with pytest.raises(StorageError, match="could not be created: Read-only file system"):
        ensure_home(str(small_tmpfs), str(small_tmpfs / "home" / "alice"), 10001, 10001)


def test_full_filesystem_is_a_clear_error_and_leaves_nothing(small_tmpfs: Path) -> None:
    for i in range(64):  # use up every inode
        try:
            (small_tmpfs / "home" / f"filler{i}").mkdir()
        except OSError:
            break
    with pytest.raises(StorageError, match="could not be created: No space left on device"):
        ensure_home(str(small_tmpfs), str(small_tmpfs / "home" / "alice"), 10001, 10001)
    assert not (small_tmpfs / "home" / "alice").exists()


def test_existing_directories_skips_missing_files_and_symlinks(root: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    projects = root / "projects"
    (projects / "astro").mkdir(parents=True)
    (projects / "notes").write_text("a file")
    (projects / "escape").symlink_to(tmp_path_factory.mktemp("outside"))
    wanted = [str(projects / name) for name in ("astro", "gaia", "notes", "escape")] + ["/etc"]
    assert existing_directories(str(root), wanted) == [str(projects / "astro")]
