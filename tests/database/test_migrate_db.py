"""The move from a hub's SQLite database to PostgreSQL (spawner/migrate_db.py), with JupyterHub's
own ORM on both sides and a real PostgreSQL: every user, token, server, group and role arrives
and works (a token is found by its value), new rows get new ids, and a move that cannot be made
right is refused with the reason and writes nothing."""

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from jupyterhub import orm
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from jovial.migrate_db import MigrationRefused, migrate

REPO = Path(__file__).resolve().parents[2]


def session(url: str) -> Session:
    return orm.new_session_factory(url)()


@pytest.fixture
def old_hub(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A SQLite hub database as a hub that ran for a while leaves it: users with servers (one
    named), tokens, a group, a role, a service with its token, an OAuth client. Its URL and the
    tokens' values by owner."""
    url = f"sqlite:///{tmp_path}/jupyterhub.sqlite"
    db = session(url)
    tokens = {}
    astro = orm.Group(name="astro")
    reader = orm.Role(name="reader", scopes=["read:users"])
    db.add_all([astro, reader, orm.OAuthClient(identifier="jupyterhub")])  # the hub's own client: tokens name it
    for name in ("alice", "bob", "carol"):
        user = orm.User(name=name, groups=[astro], roles=[reader] if name == "alice" else [])
        db.add(user)
        db.commit()
        server = orm.Server(ip="10.0.0.5", port=8888, base_url=f"/user/{name}/")
        db.add(server)
        spawner = orm.Spawner(user=user, name="", server=server, started=datetime(2026, 12, 1, 9, 0),
                              state={"service_id": f"svc-{name}"}, user_options={"profile": "small"})
        db.add(spawner)
        db.commit()
        tokens[name] = user.new_api_token(note="from the old hub")
    db.add(orm.Spawner(user=orm.User.find(db, "alice"), name="survey", state={}, user_options={"image": "astro"}))
    service = orm.Service(name="proxy-sync")
    db.add(service)
    db.commit()
    tokens["proxy-sync"] = service.new_api_token(note="service token")
    db.add(orm.OAuthClient(identifier="jupyterhub-user-alice", secret="s", redirect_uri="/user/alice/oauth_callback"))
    db.commit()
    db.close()
    yield url, tokens


def row_counts(url: str) -> dict[str, int]:
    db = session(url)
    try:
        return {t.name: db.execute(select(func.count()).select_from(t)).scalar_one() for t in orm.Base.metadata.sorted_tables}
    finally:
        db.close()


def test_every_row_arrives_and_works(old_hub: tuple[str, dict[str, str]], fresh_database: str) -> None:
    source, tokens = old_hub
    counts = migrate(source, fresh_database)
    assert counts == row_counts(source) == row_counts(fresh_database)
    assert counts["users"] == 3 and counts["api_tokens"] == 4 and counts["spawners"] == 4 and counts["oauth_clients"] == 2
    db = session(fresh_database)
    try:
        for owner, token in tokens.items():
            found = orm.APIToken.find(db, token)
            assert found is not None, f"{owner}'s token does not work after the move"
            assert (found.user or found.service).name == owner
        alice = orm.User.find(db, "alice")
        assert {s.name for s in alice._orm_spawners} == {"", "survey"}
        default = next(s for s in alice._orm_spawners if s.name == "")
        assert default.state == {"service_id": "svc-alice"} and default.user_options == {"profile": "small"}
        assert default.server.base_url == "/user/alice/" and default.started == datetime(2026, 12, 1, 9, 0)
        assert [g.name for g in alice.groups] == ["astro"] and "reader" in [r.name for r in alice.roles]
        # New rows after the move get ids past the copied ones (the sequences were moved on).
        newcomer = orm.User(name="dave")
        db.add(newcomer)
        db.commit()
        assert newcomer.id > max(u.id for u in db.query(orm.User) if u.name != "dave")
        assert orm.APIToken.find(db, newcomer.new_api_token()) is not None
    finally:
        db.close()


def test_a_target_with_users_is_refused_and_left_as_it_was(old_hub: tuple[str, dict[str, str]], fresh_database: str) -> None:
    source, _ = old_hub
    migrate(source, fresh_database)
    before = row_counts(fresh_database)
    with pytest.raises(MigrationRefused, match="the target database already has 3 users: not merging"):
        migrate(source, fresh_database)
    assert row_counts(fresh_database) == before


def test_a_source_at_another_schema_revision_is_refused_and_nothing_is_written(
    old_hub: tuple[str, dict[str, str]], fresh_database: str
) -> None:
    source, _ = old_hub
    db = session(source)
    db.execute(text("UPDATE alembic_version SET version_num = '833da8570507'"))  # JupyterHub 0.8's
    db.commit()
    db.close()
    with pytest.raises(MigrationRefused, match="the source database is not at this JupyterHub's schema.*upgrade-db"):
        migrate(source, fresh_database)
    assert row_counts(fresh_database)["users"] == 0


def test_the_command_says_when_there_is_nothing_to_migrate(tmp_path: Path, fresh_database: str) -> None:
    missing = tmp_path / "nothing-here.sqlite"
    run = subprocess.run([sys.executable, "-m", "jovial.migrate_db", f"sqlite:///{missing}", fresh_database],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 1
    assert f"there is no database at sqlite:///{missing}: nothing to migrate" in run.stderr
    assert not missing.exists()


def test_the_command_reads_the_password_from_a_file_and_reports_what_it_copied(
    old_hub: tuple[str, dict[str, str]], fresh_database: str, tmp_path: Path
) -> None:
    source, _ = old_hub
    url = make_url(fresh_database)
    without_password = url.set(password=None).render_as_string(hide_password=False)
    (tmp_path / "pw").write_text(f"{url.password}\n")
    run = subprocess.run([sys.executable, "-m", "jovial.migrate_db", source, without_password, "--password-file", str(tmp_path / "pw")],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("migrate_db: copied ") and ", 3 users," in run.stdout and "4 api_tokens" in run.stdout


def test_rows_that_do_not_fit_postgresql_are_refused_naming_the_table_and_nothing_is_written(
    old_hub: tuple[str, dict[str, str]], fresh_database: str
) -> None:
    source, _ = old_hub
    db = session(source)
    db.execute(text("UPDATE api_tokens SET note = :note"), {"note": "n" * 2000})  # SQLite keeps it; VARCHAR(1023) will not
    db.commit()
    db.close()
    with pytest.raises(MigrationRefused, match="the rows of the table api_tokens do not fit the new database: "):
        migrate(source, fresh_database)
    assert row_counts(fresh_database)["users"] == 0
