"""Options of the [webhook] group: the one HTTP listener of the daemon.

It serves Alertmanager's webhook at /v1/alerts, /healthz, /readyz and /metrics, over
plain HTTP or, with cert_file and key_file, over TLS (daemon/tls.py builds the context).
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
             "requires username/password or bearer_token_file (a client "
             "certificate alone is not enough); serve TLS there too "
             "(cert_file, key_file), or the credentials cross the network in "
             "clear text."),
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
    cfg.StrOpt(
        "cert_file",
        mutable=True,
        help="PEM file with the listener's TLS certificate (and the chain "
             "of intermediate CAs after it). When set, the listener serves "
             "HTTPS only, TLS 1.2 or newer, on every path; Alertmanager "
             "then needs http_config.tls_config.ca_file to trust it. The "
             "certificate must name the address Alertmanager uses (a DNS "
             "or IP subjectAltName). The three TLS files are read at "
             "start-up and again on `systemctl reload`, which serves a "
             "renewed certificate; if they do not load then, the error is "
             "logged and the previous certificate stays in force. See "
             "docs/webhook-tls.md."),
    cfg.StrOpt(
        "key_file",
        mutable=True,
        help="PEM file with the unencrypted private key of cert_file "
             "(readable only by the service user). May be left unset when "
             "cert_file holds the key too."),
    cfg.StrOpt(
        "client_ca_file",
        mutable=True,
        help="PEM file with the CA certificates that sign the clients' "
             "certificates. When set (it needs cert_file), the listener "
             "requires mutual TLS: a client without a certificate signed "
             "by one of these CAs is refused during the TLS handshake, on "
             "every path, /healthz and /metrics included. Only these CAs "
             "are trusted, not the system's. Alertmanager presents its "
             "certificate with http_config.tls_config.cert_file and "
             "key_file. Basic auth or the bearer token is still checked "
             "on /v1/alerts."),
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
