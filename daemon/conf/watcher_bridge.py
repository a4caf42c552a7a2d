"""Options of the [watcher_bridge] group: alarm-relay-watcher, which starts Watcher audits.

It reads the relay's alarm events from the bus (``[DEFAULT] transport_url``,
``control_exchange``, the topic below) and, for the alarms its rules match,
creates and triggers Watcher EVENT audits (docs/watcher.md). Watcher itself is
configured in [watcher_client]; its Keystone credentials in [service_credentials].
"""

from oslo_config import cfg

from daemon.conf._group import register_group_opts

__all__ = ["WATCHER_BRIDGE_OPTS", "list_opts", "register_opts", "watcher_bridge_group"]

watcher_bridge_group = cfg.OptGroup(
    name="watcher_bridge",
    title="Watcher bridge",
    help="alarm-relay-watcher: the consumer of alarm events that starts Watcher "
         "EVENT audits for the alarms its rules match (docs/watcher.md).")

WATCHER_BRIDGE_OPTS = [
    cfg.StrOpt(
        "rules_path",
        default="/etc/alarm-relay/watcher-rules.yaml",
        help="YAML file of rules: which alarms start which Watcher audit "
             "template, with which parameters and cooldown (docs/watcher.md). "
             "Validated at start-up; the bridge refuses to start on an invalid "
             "file."),
    cfg.StrOpt(
        "topic",
        help="Notification topic the alarm events are published on. Default: "
             "the first of [oslo_messaging_notifications] topics (alarms)."),
    cfg.StrOpt(
        "pool",
        default="watcher-bridge",
        help="Listener pool, i.e. the name of the bridge's own durable queue: it "
             "gets a copy of every alarm event, whatever other consumers do. "
             "Replicas of the bridge share it. The queue collects events while "
             "the bridge is stopped."),
    cfg.StrOpt(
        "state_file",
        default="watcher-bridge.sqlite",
        help="SQLite file in [DEFAULT] state_dir holding which (alarm, rule) "
             "already has an audit, the cooldown clocks and the event ids seen. "
             "It makes redeliveries and restarts idempotent: keep it across "
             "restarts."),
    cfg.FloatOpt(
        "default_cooldown",
        default=600.0,
        min=0.0,
        help="Seconds after a triggered audit during which the same resource "
             "and audit template start no other audit (a flapping alert), for "
             "rules without a cooldown of their own."),
    cfg.FloatOpt(
        "retry_initial_delay",
        default=1.0,
        min=0.01,
        help="Seconds before the first retry when Watcher or Keystone is "
             "unreachable or answers 5xx; the event stays unacknowledged."),
    cfg.FloatOpt(
        "retry_max_delay",
        default=30.0,
        min=0.01,
        help="Longest wait between two retries (the delay doubles each time "
             "up to this)."),
    cfg.FloatOpt(
        "retention",
        default=7 * 86400.0,
        min=3600.0,
        help="Seconds the records of handled events, alarms and audits are "
             "kept: a redelivery older than this would be handled again."),
    cfg.HostAddressOpt(
        "metrics_host",
        default="127.0.0.1",
        help="Address of the /metrics listener (Prometheus text format)."),
    cfg.PortOpt(
        "metrics_port",
        default=9098,
        help="TCP port of the /metrics listener (0 picks a free port, for "
             "tests; the log says which)."),
    cfg.BoolOpt(
        "metrics_enabled",
        default=True,
        help="Serve /metrics."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    register_group_opts(conf, watcher_bridge_group, WATCHER_BRIDGE_OPTS)


def list_opts() -> list:
    return [(watcher_bridge_group, WATCHER_BRIDGE_OPTS)]
