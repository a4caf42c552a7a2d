"""Options of the [mapping] group: the file that says which resource an alert is about."""

from oslo_config import cfg

from daemon.conf._group import register_group_opts

mapping_group = cfg.OptGroup(
    name="mapping",
    title="Alert to resource mapping",
    help="The YAML mapping file (docs/mapping.md) and what to do with alerts it "
         "does not match.")

MAPPING_OPTS = [
    cfg.StrOpt(
        "path",
        default="/etc/alarm-relay/mappings.yaml",
        help="YAML mapping file. Validated at start-up (the daemon refuses to "
             "start on an invalid file) and on SIGHUP (an invalid file is "
             "logged and the previous mapping stays)."),
    cfg.StrOpt(
        "unmatched",
        default="emit",
        choices=[("emit", "Publish the event with resource.mapped false."),
                 ("drop", "Do not publish; count and log once per alertname.")],
        mutable=True,
        help="What happens to an alert that no mapping rule matches."),
    cfg.DictOpt(
        "severity_map",
        default={"critical": "critical", "error": "major", "major": "major",
                 "high": "major", "minor": "minor", "medium": "minor",
                 "warning": "warning", "warn": "warning", "low": "warning",
                 "info": "info", "informational": "info", "none": "info"},
        mutable=True,
        help="Map from the value of an alert's severity label (lower-cased) to "
             "the normalised severity: critical, major, minor, warning or "
             "info. Anything else is 'unknown'."),
    cfg.StrOpt(
        "severity_label",
        default="severity",
        mutable=True,
        help="The alert label holding the raw severity (reported as "
             "severity_raw; normalised through severity_map)."),
    cfg.FloatOpt(
        "resolve_timeout",
        default=5.0,
        min=0.01,
        mutable=True,
        help="Seconds each resolver (metrics lookup) may take for one alarm. "
             "On timeout the event is published unresolved, with the reason."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    register_group_opts(conf, mapping_group, MAPPING_OPTS)


def list_opts() -> list:
    return [(mapping_group, MAPPING_OPTS)]
