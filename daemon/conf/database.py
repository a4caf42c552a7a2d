"""Options of the [database] group: where the state and the outbox live.

The options are oslo.db's own (``oslo_db.options.database_opts``), as every
OpenStack service has them: ``connection``, pool sizes, retries. Empty
``connection`` (the default) keeps the embedded SQLite file in
``[DEFAULT] state_dir``, one relay, as before high availability.
"""

from oslo_config import cfg
from oslo_db import options as db_options

from daemon.conf._group import register_group_opts

database_group = cfg.OptGroup(
    name="database",
    title="Shared database",
    help="The database holding the alarm state, the outbox, the ownership units and the "
         "webhook inbox. Empty connection (the default): the embedded SQLite file "
         "alarm-relay.sqlite in [DEFAULT] state_dir, for one relay. Several relays "
         "(high availability) share one PostgreSQL (postgresql+psycopg2://...) or "
         "MySQL/MariaDB (mysql+pymysql://...?charset=utf8mb4) database, created or "
         "upgraded with 'alarm-relay-manage db sync', and need [coordination] backend_url. "
         "Pool options (max_pool_size, max_overflow, pool_timeout, "
         "connection_recycle_time) and connection retries at start (max_retries, "
         "retry_interval) apply to the shared database only.")

DATABASE_OPTS = db_options.database_opts


def register_opts(conf: cfg.ConfigOpts) -> None:
    register_group_opts(conf, database_group, DATABASE_OPTS)


def list_opts() -> list:
    return [(database_group, DATABASE_OPTS)]
