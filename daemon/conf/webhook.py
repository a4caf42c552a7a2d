"""Options of the [webhook] group: the one HTTP listener of the daemon.

It serves Alertmanager's webhook at /v1/alerts, /healthz, /readyz and /metrics.
"""

from oslo_config import cfg

from daemon.conf._group import register_group_opts

webhook_group = cfg.OptGroup(
    name="webhook",
    title="HTTP listener",
    help="The aiohttp listener: Alertmanager webhook (POST /v1/alerts), "
         "/healthz, /readyz and /metrics.")

WEBHOOK_OPTS = [
    cfg.BoolOpt(
        "enabled",
        default=True,
        help="Run the HTTP listener. Without it there is no webhook fast path, "
             "no health check and no /metrics."),
    cfg.HostAddressOpt(
        "host",
        default="127.0.0.1",
        help="Address the listener binds. Any address other than loopback "
             "requires username/password or bearer_token_file."),
    cfg.PortOpt(
        "port",
        default=9097,
        help="TCP port of the listener (0 picks a free port, for tests)."),
    cfg.StrOpt(
        "username",
        help="Basic auth user Alertmanager must present on /v1/alerts."),
    cfg.StrOpt(
        "password",
        secret=True,
        help="Basic auth password Alertmanager must present on /v1/alerts."),
    cfg.StrOpt(
        "bearer_token_file",
        help="File holding the bearer token Alertmanager must present on "
             "/v1/alerts (http_config.authorization.credentials_file)."),
    cfg.IntOpt(
        "max_body_size",
        default=16 * 1024 * 1024,
        min=1024,
        help="Largest webhook body accepted, in bytes; larger ones get 413."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    register_group_opts(conf, webhook_group, WEBHOOK_OPTS)


def list_opts() -> list:
    return [(webhook_group, WEBHOOK_OPTS)]
