"""``alarm-relay-manage db``: the schema of the store's database, and moving to a shared one.

``db sync [--connection URL]`` creates the tables or upgrades them to this
release's schema (alembic migrations shipped in the package); run it once on a
shared database before starting the relays of a new release. ``db version``
prints the revision the database is at and whether it is current. Without
``--connection`` both act on ``[database] connection``, or, when it is empty,
on the embedded file ``alarm-relay.sqlite`` in ``[DEFAULT] state_dir``.

``db copy --from URL --to URL`` copies the alarm state, the outbox, the units
and the inbox from one database to another (typically a single relay's SQLite
file, ``sqlite:////var/lib/alarm-relay/alarm-relay.sqlite``, to the shared
PostgreSQL or MariaDB database of several relays), in one transaction on the
target, then counts the rows on both sides. Stop the relay first. The target's
schema is created or upgraded; a target that already holds rows is refused
unless ``--allow-non-empty`` is given (then events already there, by
``event_id``, are skipped and state records and units of the same key are
replaced). Rows written before ownership units existed get the unit of their
cluster (the state key's cluster, the event's ``source.cluster``).
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from daemon import exception

__all__ = ["add_parser", "copy", "run_copy", "run_sync", "run_version"]

_BATCH = 1000


def add_parser(subparsers: Any) -> None:
    """Add the ``db`` sub-command and its ``sync``, ``version`` and ``copy`` actions.

    :param subparsers: the argparse sub-parsers of ``alarm-relay-manage``
    """
    parser = subparsers.add_parser(
        "db", help="Create or upgrade the store's schema, print its version, copy a "
                   "single relay's state to a shared database.",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    actions = parser.add_subparsers(dest="db_action", title="actions")
    actions.required = True
    connection_help = ("SQLAlchemy URL of the database (default: [database] connection, or "
                       "the embedded SQLite file in [DEFAULT] state_dir)")
    sync = actions.add_parser("sync", help="Create the schema or upgrade it to this release's.")
    sync.add_argument("--connection", default=None, help=connection_help)
    sync.set_defaults(func=run_sync)
    version = actions.add_parser("version", help="Print the schema revision and whether it "
                                                 "is current; exit 1 when it is not.")
    version.add_argument("--connection", default=None, help=connection_help)
    version.set_defaults(func=run_version)
    copy_parser = actions.add_parser(
        "copy", help="Copy state, outbox, units and inbox from one database to another.")
    copy_parser.add_argument("--from", dest="source", required=True, metavar="URL",
                             help="the database to copy from (e.g. sqlite:////var/lib/"
                                  "alarm-relay/alarm-relay.sqlite)")
    copy_parser.add_argument("--to", dest="target", required=True, metavar="URL",
                             help="the database to copy to (its schema is synced first)")
    copy_parser.add_argument("--allow-non-empty", action="store_true",
                             help="copy into a target that already holds rows")
    copy_parser.set_defaults(func=run_copy)


def _url(conf: Any) -> str:
    from daemon.store import STATE_FILE

    return (conf.command.connection or conf.database.connection
            or f"sqlite:///{pathlib.Path(conf.state_dir) / STATE_FILE}")


def _engine(url: str, conf: Any | None = None) -> Any:
    from daemon.store import engine_options
    from daemon.store.sql import create_engine

    options = engine_options(conf) if conf is not None else {}
    if url.startswith("sqlite"):
        options = {"max_retries": 0}
    else:
        options.setdefault("max_retries", 3)
        options.setdefault("retry_interval", 2)
    return create_engine(url, **options)


def _report(func: Callable[[], int], err: Any) -> int:
    import sqlalchemy as sa
    from oslo_db import exception as db_exception

    from daemon.store.sql import reason

    try:
        return func()
    except exception.AlarmRelayError as error:
        print(f"error: {error}", file=err)
    except (sa.exc.SQLAlchemyError, db_exception.DBError) as error:
        print(f"error: {reason(error)}", file=err)
    return 1


def run_sync(conf: Any, out: Any = None, err: Any = None) -> int:
    """``db sync``: create or upgrade the schema; prints the revisions before and after."""
    from daemon.store import migration
    from daemon.store.sql import redact

    out, err = out or sys.stdout, err or sys.stderr
    url = _url(conf)

    def sync() -> int:
        engine = _engine(url, conf)
        try:
            before, after = migration.upgrade(engine)
        finally:
            engine.dispose()
        if before == after:
            print(f"{redact(url)}: schema at {after}, current", file=out)
        else:
            print(f"{redact(url)}: schema upgraded from {before or 'none'} to {after}", file=out)
        return 0

    return _report(sync, err)


def run_version(conf: Any, out: Any = None, err: Any = None) -> int:
    """``db version``: print the revision; 0 when current, 1 when behind, empty or unknown."""
    from daemon.store import migration

    out, err = out or sys.stdout, err or sys.stderr
    url = _url(conf)

    def version() -> int:
        engine = _engine(url, conf)
        try:
            revision = migration.current(engine)
        finally:
            engine.dispose()
        head = migration.head()
        if revision == head:
            print(f"{revision} (current)", file=out)
            return 0
        print(f"{revision or 'none'} (this release needs {head}: run "
              "'alarm-relay-manage db sync')", file=out)
        return 1

    return _report(version, err)


def run_copy(conf: Any, out: Any = None, err: Any = None) -> int:
    """``db copy``: 0 when every row was copied and counted on both sides, else 1."""
    out, err = out or sys.stdout, err or sys.stderr
    args = conf.command

    def run() -> int:
        counts = copy(args.source, args.target, allow_non_empty=args.allow_non_empty)
        from daemon.store.sql import redact

        print(f"copied {counts['outbox']} events, {counts['lifecycle_state']} state records, "
              f"{counts['units']} units and {counts['inbox']} inbox deliveries from "
              f"{redact(args.source)} to {redact(args.target)}", file=out)
        return 0

    return _report(run, err)


def copy(source: str, target: str, *, allow_non_empty: bool = False) -> dict[str, int]:
    """Copy every row of the store's tables from ``source`` to ``target``.

    The source's schema must be current (an SQLite file is upgraded, as the
    relay would at start); the target's is created or upgraded. One transaction
    on the target: on any failure nothing is copied. Events keep their order
    (the target numbers them anew, in the source's order), their ``event_id``
    and time; rows of no unit get their cluster's.

    :returns: rows copied per table
    :raises StoreError: the target holds rows (without ``allow_non_empty``), the
        two are the same database, or the rows counted after do not add up
    :raises SchemaMismatch: the source's schema is behind or unknown
    :raises sqlalchemy.exc.SQLAlchemyError: a database failed (nothing copied)
    """
    import sqlalchemy as sa

    from daemon.store import migration
    from daemon.store.sql import redact
    from daemon.store.tables import INBOX, LIFECYCLE_STATE, OUTBOX, UNITS

    if sa.engine.make_url(source) == sa.engine.make_url(target):
        raise exception.StoreError(problem="--from and --to are the same database")
    tables = (LIFECYCLE_STATE, UNITS, INBOX, OUTBOX)
    src, dst = _engine(source), _engine(target)
    try:
        if src.dialect.name == "sqlite":
            migration.upgrade(src)
        else:
            migration.check_current(src)
        migration.upgrade(dst)
        before = _counts(dst, tables)
        if any(before.values()) and not allow_non_empty:
            held = ", ".join(f"{n} {name}" for name, n in before.items() if n)
            raise exception.StoreError(
                problem=f"{redact(target)} is not empty ({held}): give --allow-non-empty "
                        "to copy into it anyway")
        copied = {table.name: 0 for table in tables}
        with src.connect() as reader, dst.begin() as writer:
            for table in tables:
                order = table.primary_key.columns.values()
                rows = reader.execute(sa.select(table).order_by(*order)).mappings()
                for batch in _batches(rows):
                    batch = [_with_unit(table.name, dict(row)) for row in batch]
                    for row in batch:
                        # The target numbers rows anew (its sequences go on from there).
                        row.pop("seq", None)
                        row.pop("id", None)
                    writer.execute(_insert(writer.dialect.name, table, allow_non_empty), batch)
                    copied[table.name] += len(batch)
        after = _counts(dst, tables)
        expected = _counts(src, tables)
        for name, count in expected.items():
            if after[name] < count:
                raise exception.StoreError(
                    problem=f"{redact(target)} holds {after[name]} rows of {name} after "
                            f"the copy, the source {count}")
        return copied
    finally:
        src.dispose()
        dst.dispose()


def _counts(engine: Any, tables: tuple) -> dict[str, int]:
    import sqlalchemy as sa

    with engine.connect() as connection:
        return {t.name: connection.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in tables}


def _batches(rows: Any) -> Iterator[list]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _with_unit(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """The row, with the unit of its cluster when it has none (written by release 1)."""
    if row.get("unit", "x") != "":
        return row
    if table == "lifecycle_state":
        cluster = row["key"].rpartition("/")[0]
    elif table == "outbox":
        try:
            cluster = json.loads(row["payload"]).get("source", {}).get("cluster") or ""
        except (ValueError, AttributeError):
            cluster = ""
    else:
        cluster = ""
    row["unit"] = cluster
    return row


def _insert(dialect: str, table: Any, merge: bool) -> Any:
    """INSERT for ``table``; with ``merge``, one that skips (outbox, inbox) or replaces
    (state, units) a row whose key is already there."""
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    if not merge or table.name == "inbox":
        return table.insert()
    keys = [c.name for c in table.primary_key.columns]
    if table.name == "outbox":
        keys = ["event_id"]
    others = [c.name for c in table.columns if c.name not in keys and c.name != "seq"]
    if dialect == "mysql":
        insert = mysql.insert(table)
        if table.name == "outbox":
            return insert.on_duplicate_key_update(seq=table.c.seq)
        return insert.on_duplicate_key_update({c: insert.inserted[c] for c in others})
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    if table.name == "outbox":
        return insert.on_conflict_do_nothing(index_elements=keys)
    return insert.on_conflict_do_update(index_elements=keys,
                                        set_={c: insert.excluded[c] for c in others})
