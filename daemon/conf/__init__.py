"""Configuration of alarm-relay: one module per option group.

``register_opts(conf)`` registers every group on a ``ConfigOpts``;
``prepare(argv)`` builds the fully set-up object the entry points use.
"""

from __future__ import annotations

from oslo_config import cfg
from oslo_log import log

from daemon.conf import aetos_client
from daemon.conf import alertmanager
from daemon.conf import datasources
from daemon.conf import default
from daemon.conf import lifecycle
from daemon.conf import mapping
from daemon.conf import prometheus_client
from daemon.conf import publisher
from daemon.conf import service_credentials
from daemon.conf import webhook

__all__ = ["GROUP_MODULES", "register_opts", "set_defaults"]

GROUP_MODULES = (
    default,
    alertmanager,
    lifecycle,
    webhook,
    mapping,
    datasources,
    aetos_client,
    service_credentials,
    prometheus_client,
    publisher,
)

PROJECT = "alarm-relay"


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register every alarm-relay option group on ``conf``."""
    for module in GROUP_MODULES:
        module.register_opts(conf)


def set_defaults(conf: cfg.ConfigOpts | None = None) -> None:
    """Set our defaults for options owned by libraries (oslo.messaging, oslo.log).

    Called by the entry points and by oslo-config-generator (through the
    ``oslo.config.opts.defaults`` entry point), so the sample shows them.
    """
    # Imported here, not at module top: daemon/__init__.py must have selected
    # the oslo.service backend before oslo.messaging is imported.
    from oslo_messaging._drivers import amqp as _amqp
    from oslo_messaging.notify import notifier as _notifier

    conf = conf if conf is not None else cfg.CONF

    conf.register_opts(_notifier._notifier_opts, group="oslo_messaging_notifications")
    conf.set_default("driver", ["messagingv2"], group="oslo_messaging_notifications")
    conf.set_default("topics", ["alarms"], group="oslo_messaging_notifications")
    conf.register_opts(_amqp.amqp_opts, group="oslo_messaging_rabbit")
    conf.set_default("amqp_durable_queues", True, group="oslo_messaging_rabbit")
    log.set_defaults(default_log_levels=log.get_default_log_levels() + [
        "aiohttp.access=WARN", "amqp=WARN", "kombu=WARN", "cotyledon=INFO",
    ])
