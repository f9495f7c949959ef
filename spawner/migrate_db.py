"""Move a hub's SQLite database into PostgreSQL, losing no user, token, server or role.

`python -m jovial.migrate_db SOURCE TARGET` (SQLAlchemy URLs; swarm/migrate-db runs it as a Swarm
job next to the stack). Both databases are JupyterHub's own schema at the same revision (the
source is checked against this JupyterHub's, as the hub would at start). The target must have no
users: a hub that ran on it briefly leaves only its services and roles, which are replaced by the
source's. Every row is copied in one transaction, in the order of the foreign keys, and the
target's id sequences are moved past the copied ids; on any error nothing is written.
"""

import argparse
import os
import sys

from jupyterhub import orm
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError


class MigrationRefused(Exception):
    """The databases are not fit for the move; the message says why and what to do."""


def migrate(source_url: str, target_url: str) -> dict[str, int]:
    """Copy every JupyterHub table from source to target; the number of rows copied per table."""
    source = create_engine(source_url)
    try:
        orm.check_db_revision(source)
    except orm.DatabaseSchemaMismatch as error:
        raise MigrationRefused(f"the source database is not at this JupyterHub's schema: {error}") from error
    # Makes the tables (and stamps the schema revision) when the target is new, checks them otherwise.
    target = orm.new_session_factory(target_url).kw["bind"]
    tables = orm.Base.metadata.sorted_tables
    counts: dict[str, int] = {}
    with source.connect() as reading, target.begin() as writing:
        users = writing.execute(select(func.count()).select_from(orm.User.__table__)).scalar_one()
        if users:
            raise MigrationRefused(
                f"the target database already has {users} users: not merging two hubs' databases "
                "(migrate into a new, empty database)"
            )
        for table in reversed(tables):
            writing.execute(table.delete())
        for table in tables:
            rows = [dict(row) for row in reading.execute(select(table)).mappings()]
            try:
                if rows:
                    writing.execute(table.insert(), rows)
            except SQLAlchemyError as error:  # e.g. a value longer than PostgreSQL's column allows (SQLite never checks)
                raise MigrationRefused(f"the rows of the table {table.name} do not fit the new database: {_first_line(error)}") from error
            counts[table.name] = len(rows)
        _move_sequences_past_copied_ids(writing)
    source.dispose()
    target.dispose()
    return counts


def _move_sequences_past_copied_ids(connection: Connection) -> None:
    """PostgreSQL's serial ids continue after the largest copied id (inserts named their ids)."""
    if connection.dialect.name != "postgresql":
        return
    for table in orm.Base.metadata.sorted_tables:
        if (column := table.autoincrement_column) is not None:
            connection.execute(
                text(f"SELECT setval(pg_get_serial_sequence(:table, :column), "
                     f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"),
                {"table": table.name, "column": column.name},
            )


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m jovial.migrate_db", description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the old database's SQLAlchemy URL, e.g. sqlite:////old/jupyterhub.sqlite")
    parser.add_argument("target", help="the new one's, e.g. postgresql://jupyterhub@postgres:5432/jupyterhub")
    parser.add_argument("--password-file", help="a file holding the target's password (not put in the URL)")
    args = parser.parse_args()
    target = args.target
    if args.password_file:
        with open(args.password_file) as file:
            target = make_url(target).set(password=file.read().strip()).render_as_string(hide_password=False)
    if args.source.startswith("sqlite:///") and not os.path.exists(args.source.removeprefix("sqlite:///")):
        sys.exit(f"migrate_db: there is no database at {args.source}: nothing to migrate")
    try:
        counts = migrate(args.source, target)
    except MigrationRefused as error:
        sys.exit(f"migrate_db: refused: {error}; nothing was written")
    except SQLAlchemyError as error:
        sys.exit(f"migrate_db: failed: {_first_line(error)}; nothing was written")
    print("migrate_db: copied " + ", ".join(f"{n} {table}" for table, n in counts.items() if n), flush=True)


if __name__ == "__main__":
    main()
