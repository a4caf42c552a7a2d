"""Options of the [prometheus_client] group, for clouds not yet on Aetos (names as Watcher's)."""

from oslo_config import cfg

from daemon.conf._group import register_group_opts

__all__ = ["PROMETHEUS_CLIENT_OPTS", "list_opts", "prometheus_client_group",
           "register_opts"]

prometheus_client_group = cfg.OptGroup(
    name="prometheus_client",
    title="Prometheus client",
    help="A Prometheus server queried directly (no Keystone).")

PROMETHEUS_CLIENT_OPTS = [
    cfg.HostAddressOpt(
        "host",
        default="127.0.0.1",
        help="Prometheus server host."),
    cfg.PortOpt(
        "port",
        default=9090,
        help="Prometheus server port."),
    cfg.StrOpt(
        "path_prefix",
        default="",
        help="Path prefix Prometheus is served under (--web.route-prefix)."),
    cfg.BoolOpt(
        "use_tls",
        default=False,
        help="Talk HTTPS to Prometheus."),
    cfg.StrOpt(
        "fqdn_label",
        default="fqdn",
        help="Prometheus label that holds a compute host's FQDN."),
    cfg.StrOpt(
        "instance_uuid_label",
        default="resource",
        help="Prometheus label that holds an instance's UUID."),
    cfg.StrOpt(
        "username",
        help="Basic auth user for Prometheus."),
    cfg.StrOpt(
        "password",
        secret=True,
        help="Basic auth password for Prometheus."),
    cfg.StrOpt(
        "cafile",
        help="CA bundle used to verify Prometheus's TLS certificate."),
    cfg.StrOpt(
        "certfile",
        help="Client certificate presented to Prometheus."),
    cfg.StrOpt(
        "keyfile",
        help="Private key of certfile."),
    cfg.BoolOpt(
        "insecure",
        default=False,
        help="Skip TLS verification of Prometheus (a warning is logged)."),
    cfg.FloatOpt(
        "timeout",
        default=5.0,
        min=0.1,
        help="Seconds allowed for one Prometheus query."),
    cfg.IntOpt(
        "max_concurrency",
        default=8,
        min=1,
        help="Most Prometheus requests in flight at once."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    register_group_opts(conf, prometheus_client_group, PROMETHEUS_CLIENT_OPTS)


def list_opts() -> list:
    return [(prometheus_client_group, PROMETHEUS_CLIENT_OPTS)]
