"""docs/settings.md is generated from the settings' help texts (docs/settings_table.py): stale, it fails here."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_settings_reference_is_what_the_help_texts_say() -> None:
    check = subprocess.run([sys.executable, "docs/settings_table.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_the_check_fails_when_the_reference_is_stale(tmp_path: Path) -> None:
    # The same generator against a copy of the reference with one line changed.
    reference = REPO / "docs" / "settings.md"
    stale = reference.read_text().replace("| `cmd` |", "| `command` |")
    script = (REPO / "docs" / "settings_table.py").read_text().replace(
        'TARGET = Path(__file__).with_name("settings.md")', f"TARGET = Path({str(tmp_path / 'settings.md')!r})")
    (tmp_path / "settings.md").write_text(stale)
    (tmp_path / "settings_table.py").write_text(script)
    check = subprocess.run([sys.executable, str(tmp_path / "settings_table.py"), "--check"], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 1 and "is stale: run `python docs/settings_table.py`" in check.stderr
