"""Options of the [DEFAULT] group owned by alarm-relay.

``transport_url`` belongs to oslo.messaging, ``graceful_shutdown_timeout`` to
oslo.service and the logging options to oslo.log; they are listed by their own
namespaces in the config generator.
"""

import socket

from oslo_config import cfg

DEFAULT_OPTS = [
    cfg.StrOpt(
        "state_dir",
        default="/var/lib/alarm-relay",
        help="Directory holding the SQLite file with alarm state and the event "
             "outbox. It must be writable by the service user and survive "
             "restarts (systemd's StateDirectory=alarm-relay gives this path)."),
    cfg.StrOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<hostname>",
        help="Name of this host, used in the publisher_id of every event "
             "(alarm-relay:<host>)."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(DEFAULT_OPTS)


def list_opts() -> list:
    return [(None, DEFAULT_OPTS)]
