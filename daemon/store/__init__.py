"""Where alarm state and unsent events live: one interface, two implementations.

:class:`Store` is the interface the intake and the dispatcher use;
:class:`SQLiteStore` is the embedded SQLite file in ``[DEFAULT] state_dir``
(the default: one relay); :class:`SQLStore` is a shared PostgreSQL or
MySQL/MariaDB database (``[database] connection``: several relays). Both use
the tables of :mod:`daemon.store.tables`, whose schema
:mod:`daemon.store.migration` manages.
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from daemon.store.base import InboxItem, StateChange, Store
from daemon.store.sqlite import DEFAULT_MAX_EVENT_BYTES, MIN_EVENT_BYTES, SQLiteStore

if TYPE_CHECKING:
    from daemon.store.sql import SQLStore

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "MIN_EVENT_BYTES", "STATE_FILE", "InboxItem", "SQLStore",
           "SQLiteStore", "StateChange", "Store", "engine_options", "hold_single_relay_lock",
           "store_from_conf"]

#: The embedded store's file name in ``[DEFAULT] state_dir``.
STATE_FILE = "alarm-relay.sqlite"


def __getattr__(name: str) -> Any:
    # SQLAlchemy and oslo.db take a third of the daemon's import time: a single
    # relay on the embedded file never imports them.
    if name == "SQLStore":
        from daemon.store.sql import SQLStore

        return SQLStore
    raise AttributeError(name)


def engine_options(conf: cfg.ConfigOpts) -> dict:
    """oslo.db ``create_engine`` keywords from ``[database]``."""
    from daemon.store.sql import ENGINE_OPTIONS

    return {name: conf.database[name] for name in ENGINE_OPTIONS}


def store_from_conf(conf: cfg.ConfigOpts) -> Store:
    """The configured store, not yet opened.

    :param conf: options ``[database] connection`` (empty: the embedded file
        ``alarm-relay.sqlite`` in ``[DEFAULT] state_dir``) and the pool and retry
        options beside it, ``[publisher] max_outbox_events`` and ``max_event_bytes``
    """
    if not conf.database.connection:
        return SQLiteStore(str(pathlib.Path(conf.state_dir) / STATE_FILE),
                           max_events=conf.publisher.max_outbox_events,
                           max_event_bytes=conf.publisher.max_event_bytes)
    from daemon.store.sql import SQLStore

    return SQLStore(conf.database.connection, max_events=conf.publisher.max_outbox_events,
                    max_event_bytes=conf.publisher.max_event_bytes,
                    engine_options=engine_options(conf))


def hold_single_relay_lock(store: Store) -> Store:
    """Make ``store`` (open) the database of this one relay, until it is closed or
    the process dies; returns it.

    Called when no coordination is configured, so that a second relay started
    by mistake on the same database refuses to start instead of publishing
    every alarm a second time.

    :raises StoreInUse: another relay holds the database; the message names it
        when known and says that several relays need ``[coordination] backend_url``
    :raises StoreError: the database failed
    """
    store.hold_single_relay_lock()
    return store
