"""Fresh SQL databases on the machine's shared PostgreSQL and MariaDB, for one test each.

Several relays share one database through oslo.db (issue 15). A test gets a database and a
user of its own, both uniquely named, as an SQLAlchemy URL with the driver the relay uses
(``postgresql+psycopg2://``, ``mysql+pymysql://``), and both are dropped afterwards, with any
connection still open to them. The servers are the machine's (``make services``: PostgreSQL
trusting TCP from 127.0.0.1, MariaDB with root and no password from 127.0.0.1); they are
shared with other tests and other people, so nothing else on them is touched.

::

    with PostgresDatabase() as db:
        engine = sqlalchemy.create_engine(db.url)
"""

from __future__ import annotations

import secrets
from typing import ClassVar, Self

import psycopg2
import pymysql
from psycopg2 import sql

from tools.harness.ports import LOOPBACK, port_open

__all__ = [
    "DatabaseUnavailable",
    "MariaDBDatabase",
    "PostgresDatabase",
    "SharedDatabase",
    "MARIADB_PORT",
    "POSTGRES_PORT",
]

POSTGRES_PORT = 5432
MARIADB_PORT = 3306
CONNECT_TIMEOUT = 5


class DatabaseUnavailable(RuntimeError):
    """The shared server does not answer or refuses its admin user; the message says why."""


class SharedDatabase:
    """A uniquely named database and user on a shared server; ``create()``/``drop()``.

    :param prefix: start of the database and user names (``relaytest`` by default); the
        rest is random, so parallel tests never meet
    """

    kind: ClassVar[str] = "database"
    port: ClassVar[int]

    def __init__(self, *, prefix: str = "relaytest") -> None:
        token = secrets.token_hex(6)
        self.name = f"{prefix}_{token}"
        self.user = f"{prefix}_u_{token}"
        self.password = secrets.token_hex(12)
        self.created = False

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the database, as ``[database] connection`` takes it."""
        raise NotImplementedError

    def create(self) -> Self:
        """Create the user and the database it owns.

        :raises DatabaseUnavailable: the server is down or refuses the admin user
        """
        if not port_open(self.port):
            raise DatabaseUnavailable(
                f"no {self.kind} on {LOOPBACK}:{self.port}: run `make services`")
        self._create()
        self.created = True
        return self

    def drop(self) -> None:
        """Drop the database and the user, closing their connections first. Idempotent."""
        if self.created:
            self._drop()
            self.created = False

    def exists(self) -> bool:
        """Whether the database is on the server (for tests of the harness itself)."""
        raise NotImplementedError

    def _create(self) -> None:
        raise NotImplementedError

    def _drop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.drop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {LOOPBACK}:{self.port}>"


class PostgresDatabase(SharedDatabase):
    """A database on the shared PostgreSQL (admin: ``postgres``, trusted on 127.0.0.1)."""

    kind = "PostgreSQL"
    port = POSTGRES_PORT
    admin_user = "postgres"

    @property
    def url(self) -> str:
        return (f"postgresql+psycopg2://{self.user}:{self.password}@{LOOPBACK}:{self.port}/"
                f"{self.name}")

    def _admin(self) -> psycopg2.extensions.connection:
        try:
            conn = psycopg2.connect(host=LOOPBACK, port=self.port, user=self.admin_user,
                                    dbname="postgres", connect_timeout=CONNECT_TIMEOUT)
        except psycopg2.OperationalError as err:
            raise DatabaseUnavailable(
                f"PostgreSQL on {LOOPBACK}:{self.port} refuses {self.admin_user} without a "
                f"password ({str(err).strip()}): run `make services`") from err
        conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
        return conn

    def _create(self) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(
                    sql.Identifier(self.user)), (self.password,))
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8'").format(
                    sql.Identifier(self.name), sql.Identifier(self.user)))
        finally:
            conn.close()

    def _drop(self) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                # WITH (FORCE) (PostgreSQL 13+) ends the sessions still connected to it.
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.name)))
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                    (self.user,))
                cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(self.user)))
        finally:
            conn.close()

    def exists(self) -> bool:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.name,))
                return cur.fetchone() is not None
        finally:
            conn.close()


class MariaDBDatabase(SharedDatabase):
    """A database on the shared MariaDB (admin: ``root`` without password on 127.0.0.1).

    The user is ``NAME@127.0.0.1``: the server listens on loopback only, and the relay
    connects to 127.0.0.1.
    """

    kind = "MariaDB"
    port = MARIADB_PORT
    admin_user = "root"

    @property
    def url(self) -> str:
        return (f"mysql+pymysql://{self.user}:{self.password}@{LOOPBACK}:{self.port}/"
                f"{self.name}?charset=utf8mb4")

    def _admin(self) -> pymysql.connections.Connection:
        try:
            return pymysql.connect(host=LOOPBACK, port=self.port, user=self.admin_user,
                                   password="", connect_timeout=CONNECT_TIMEOUT,
                                   autocommit=True)
        except pymysql.MySQLError as err:
            raise DatabaseUnavailable(
                f"MariaDB on {LOOPBACK}:{self.port} refuses {self.admin_user} without a "
                f"password ({err}): run `make services`") from err

    def _create(self) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE USER `{self.user}`@`{LOOPBACK}` IDENTIFIED BY %s",
                            (self.password,))
                cur.execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 "
                            "COLLATE utf8mb4_bin")
                cur.execute(f"GRANT ALL PRIVILEGES ON `{self.name}`.* TO "
                            f"`{self.user}`@`{LOOPBACK}`")
        finally:
            conn.close()

    def _drop(self) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                # A session that holds a lock on a table would make DROP DATABASE wait.
                cur.execute("SELECT id FROM information_schema.processlist WHERE user = %s",
                            (self.user,))
                for (session,) in cur.fetchall():
                    try:
                        cur.execute(f"KILL {int(session)}")
                    except pymysql.MySQLError:
                        pass  # it ended meanwhile
                cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
                cur.execute(f"DROP USER IF EXISTS `{self.user}`@`{LOOPBACK}`")
        finally:
            conn.close()

    def exists(self) -> bool:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                            (self.name,))
                return cur.fetchone() is not None
        finally:
            conn.close()
