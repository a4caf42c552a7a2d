"""The store's schema versions: alembic migrations shipped in the package.

The revisions live in ``daemon/store/migrations`` (``script_location``
``daemon.store:migrations``, found through the installed package, not the
working directory). Revision ``0001`` is the schema of the releases before high
availability; an embedded SQLite file they wrote (``PRAGMA user_version`` 1, no
``alembic_version`` table) is stamped at it and upgraded from there, so nothing
in it is lost.

- :func:`upgrade`: create or upgrade to the newest revision (``db sync``, and
  the embedded SQLite file at every open);
- :func:`current`: the revision a database is at (``db version``);
- :func:`check_current`: refuse a shared database that is behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from daemon import exception

if TYPE_CHECKING:
    import sqlalchemy as sa
    from alembic.config import Config

__all__ = ["HEAD", "SQLITE_USER_VERSION", "check_current", "current", "head", "upgrade"]

#: ``PRAGMA user_version`` of an embedded file at :func:`head`: a release before
#: high availability (which knows 1) refuses such a file instead of misreading it.
SQLITE_USER_VERSION = 2

#: The newest revision, written out so that opening a current embedded file needs
#: neither alembic nor SQLAlchemy (a test checks it is :func:`head`).
HEAD = "0002"

_SCRIPT_LOCATION = "daemon.store:migrations"


def _config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", _SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision this relay knows (from the migration scripts)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def _legacy_revision(connection: sa.Connection) -> str | None:
    """The revision of tables made without alembic (an embedded file of release 1), or None."""
    import sqlalchemy as sa

    inspector = sa.inspect(connection)
    if inspector.has_table("alembic_version") or not inspector.has_table("outbox"):
        return None
    columns = {c["name"] for c in inspector.get_columns("outbox")}
    return "0002" if "unit" in columns else "0001"


def current(engine: sa.Engine) -> str | None:
    """The revision the database is at; None for an empty database.

    :raises sqlalchemy.exc.SQLAlchemyError: the database cannot be read
    """
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
        return revision or _legacy_revision(connection)


def upgrade(engine: sa.Engine, revision: str | None = None) -> tuple[str | None, str]:
    """Create or upgrade the schema to :func:`head`, in one transaction where the
    backend allows it (PostgreSQL, SQLite; MySQL commits each DDL statement).

    :param revision: stop at this revision instead (tests build old schemas)
    :returns: the revision before and after
    :raises SchemaMismatch: the database is at a revision this relay does not
        know (a newer release wrote it)
    :raises sqlalchemy.exc.SQLAlchemyError: the database failed
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    target = revision or head()
    with engine.begin() as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        config = _config(connection)
        if before is None:
            legacy = _legacy_revision(connection)
            if legacy is not None:
                command.stamp(config, legacy)
                before = legacy
        _known(before, head())
        if before != target:
            command.upgrade(config, target)
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(f"PRAGMA user_version={SQLITE_USER_VERSION:d}")
    return before, target


def _known(revision: str | None, target: str) -> None:
    if revision is None or revision == target:
        return
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config())
    try:
        script.get_revision(revision)
    except Exception as err:  # noqa: BLE001 - alembic raises several kinds for an unknown id
        raise exception.SchemaMismatch(
            f"database schema is at revision {revision}, unknown to this relay (newest "
            f"{target}): a newer alarm-relay wrote it") from err


def check_current(engine: sa.Engine) -> str:
    """The revision, when it is :func:`head`.

    :raises SchemaMismatch: the schema is missing, behind or unknown; the message
        says to run ``alarm-relay-manage db sync``
    :raises sqlalchemy.exc.SQLAlchemyError: the database cannot be read
    """
    target = head()
    revision = current(engine)
    if revision != target:
        _known(revision, target)
        raise exception.SchemaMismatch(current=revision or "none (empty database)",
                                       head=target)
    return revision
