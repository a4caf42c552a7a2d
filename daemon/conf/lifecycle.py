"""Options of the [lifecycle] group: when an alarm fires, updates and resolves."""

from oslo_config import cfg

lifecycle_group = cfg.OptGroup(
    name="lifecycle",
    title="Alarm lifecycle",
    help="How alert observations become firing, updated and resolved transitions.")

LIFECYCLE_OPTS = [
    cfg.FloatOpt(
        "resolve_grace_period",
        default=90.0,
        min=0.0,
        mutable=True,
        help="Seconds during which no alarm is resolved by disappearance after "
             "the relay starts or after Alertmanager restarted (its uptime "
             "changed): Alertmanager forgets alerts on restart and Prometheus "
             "re-sends them within its evaluation and resend intervals."),
    cfg.StrOpt(
        "suppressed_policy",
        default="keep-firing",
        choices=[("keep-firing", "A silenced or inhibited alarm stays firing; "
                                 "the event lists silenced_by/inhibited_by."),
                 ("resolve", "A silenced or inhibited alarm resolves with "
                             "reason 'silenced'.")],
        mutable=True,
        help="What a silence or an inhibition does to a firing alarm."),
    cfg.ListOpt(
        "replica_labels",
        default=["replica", "prometheus_replica"],
        help="Labels dropped before the fingerprint is computed, so alerts "
             "sent by HA Prometheus pairs are one alarm."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(lifecycle_group)
    conf.register_opts(LIFECYCLE_OPTS, group=lifecycle_group)


def list_opts() -> list:
    return [(lifecycle_group, LIFECYCLE_OPTS)]
