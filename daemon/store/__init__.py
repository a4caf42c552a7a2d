"""Where alarm state and unsent events live: one interface, one store per relay.

:class:`Store` is the interface the intake and the dispatcher use;
:class:`SQLiteStore` is the embedded SQLite file in ``[DEFAULT] state_dir``.
"""

from __future__ import annotations

import pathlib

from oslo_config import cfg

from daemon.store.base import InboxItem, StateChange, Store
from daemon.store.sqlite import DEFAULT_MAX_EVENT_BYTES, MIN_EVENT_BYTES, SQLiteStore

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "MIN_EVENT_BYTES", "STATE_FILE", "InboxItem", "SQLiteStore",
           "StateChange", "Store", "store_from_conf"]

#: The embedded store's file name in ``[DEFAULT] state_dir``.
STATE_FILE = "alarm-relay.sqlite"


def store_from_conf(conf: cfg.ConfigOpts) -> Store:
    """The configured store, not yet opened.

    :param conf: options ``[DEFAULT] state_dir`` and ``[publisher]``
        ``max_outbox_events`` and ``max_event_bytes``
    """
    return SQLiteStore(str(pathlib.Path(conf.state_dir) / STATE_FILE),
                       max_events=conf.publisher.max_outbox_events,
                       max_event_bytes=conf.publisher.max_event_bytes)
