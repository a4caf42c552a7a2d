"""Options of the [alertmanager] group: where and how alerts are pulled."""

from oslo_config import cfg

from daemon.conf._group import register_group_opts

alertmanager_group = cfg.OptGroup(
    name="alertmanager",
    title="Alertmanager source",
    help="Alertmanager replicas polled for alerts (GET /api/v2/alerts).")

ALERTMANAGER_OPTS = [
    cfg.ListOpt(
        "urls",
        default=["http://127.0.0.1:9093"],
        help="Base URLs of the Alertmanager replicas of one cluster, path "
             "prefix included (http://am1:9093/alertmanager). An alert is "
             "resolved only when it is gone from every replica that answered."),
    cfg.StrOpt(
        "cluster_name",
        default="default",
        help="Name of the Alertmanager cluster; part of each alarm_id and of "
             "the event's source."),
    cfg.FloatOpt(
        "poll_interval",
        default=15.0,
        min=0.1,
        mutable=True,
        help="Seconds between two polls of the Alertmanager replicas."),
    cfg.FloatOpt(
        "poll_jitter",
        default=0.1,
        min=0.0,
        max=0.5,
        mutable=True,
        help="Random fraction of poll_interval added to or removed from each "
             "wait, so several relays do not poll in step."),
    cfg.FloatOpt(
        "min_poll_gap",
        default=1.0,
        min=0.0,
        mutable=True,
        help="Fewest seconds between two polls when webhook deliveries ask for "
             "immediate polls."),
    cfg.FloatOpt(
        "timeout",
        default=10.0,
        min=0.1,
        help="Seconds allowed for one request to one Alertmanager replica."),
    cfg.ListOpt(
        "filter",
        default=[],
        help="Alertmanager label matchers (alertname=~\"Host.*\") passed as "
             "filter= on every poll."),
    cfg.StrOpt(
        "receiver",
        help="Only alerts routed to this receiver (a regular expression, as "
             "Alertmanager's API takes it)."),
    cfg.StrOpt(
        "ca_file",
        help="CA bundle used to verify the Alertmanager's TLS certificate."),
    cfg.StrOpt(
        "cert_file",
        help="Client certificate presented to Alertmanager."),
    cfg.StrOpt(
        "key_file",
        help="Private key of cert_file."),
    cfg.BoolOpt(
        "insecure",
        default=False,
        help="Skip TLS verification of Alertmanager. Never in production: a "
             "warning is logged at start-up."),
    cfg.StrOpt(
        "username",
        help="Basic auth user for Alertmanager."),
    cfg.StrOpt(
        "password",
        secret=True,
        help="Basic auth password for Alertmanager."),
    cfg.StrOpt(
        "bearer_token_file",
        help="File holding a bearer token sent to Alertmanager (re-read at "
             "every reload)."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    register_group_opts(conf, alertmanager_group, ALERTMANAGER_OPTS)


def list_opts() -> list:
    return [(alertmanager_group, ALERTMANAGER_OPTS)]
