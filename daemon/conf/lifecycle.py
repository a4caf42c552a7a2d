"""Options of the [lifecycle] group: when an alarm fires, updates and resolves."""

from oslo_config import cfg

from daemon.conf._group import register_group_opts

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
        deprecated_for_removal=True,
        deprecated_reason="Disappearance is judged from evidence: a replica "
                          "that restarted counts only once the alarm's last "
                          "seen endsAt has passed, a replica that kept "
                          "running counts at once (docs/lifecycle.md).",
        help="Ignored. Formerly: seconds during which no alarm resolved by "
             "disappearance after a start or an Alertmanager restart."),
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
    cfg.FloatOpt(
        "expire_delay",
        default=15.0,
        min=0.0,
        help="Seconds an alarm's endsAt must be past, in Alertmanager's clock "
             "(the measured offset applied), before it counts as passed: the "
             "silence of a restarted replica then counts, and the alarm "
             "resolves with reason 'expired'. A margin for the offset's own "
             "error and for request latency."),
    cfg.FloatOpt(
        "max_resend_interval",
        default=900.0,
        min=1.0,
        help="Seconds within which Prometheus re-sends a still-firing alert to "
             "an Alertmanager replica (at most max(evaluation_interval, "
             "--rules.alert.resend-delay); 1 minute by default). Used for an "
             "alarm only ever delivered by webhook, and only until a poll of "
             "its cluster has shown how far ahead Alertmanager lists endsAt: a "
             "replica restarted after such an alert began counts as having "
             "dropped it once it has been up this long without listing it."),
    cfg.FloatOpt(
        "default_resolve_timeout",
        default=300.0,
        min=1.0,
        deprecated_for_removal=True,
        deprecated_reason="A firing webhook alert carries no endsAt, so there "
                          "is no evidence that it ended: such an alarm stays "
                          "firing until a source says otherwise.",
        help="Ignored. Formerly: the endsAt assumed for an alarm only ever "
             "seen through the webhook."),
    cfg.FloatOpt(
        "resolved_retention",
        default=86400.0,
        min=0.0,
        help="Seconds a resolved occurrence is remembered, so that late, "
             "duplicate or reordered deliveries of it change nothing."),
    cfg.FloatOpt(
        "state_refresh_margin",
        default=120.0,
        min=0.0,
        help="A stored endsAt is rewritten to the state file once it is this "
             "close to now (endsAt changes on every Prometheus re-send; writing "
             "each change would rewrite every alarm on every poll)."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    register_group_opts(conf, lifecycle_group, LIFECYCLE_OPTS)


def list_opts() -> list:
    return [(lifecycle_group, LIFECYCLE_OPTS)]
