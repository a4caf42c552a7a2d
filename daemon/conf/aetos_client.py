"""Options of the [aetos_client] group, named as in Watcher's Aetos datasource.

Keystone credentials live in [service_credentials] (see service_credentials.py).
"""

from oslo_config import cfg

from daemon.conf._group import register_group_opts

__all__ = ["AETOS_CLIENT_OPTS", "aetos_client_group", "list_opts", "register_opts"]

aetos_client_group = cfg.OptGroup(
    name="aetos_client",
    title="Aetos client",
    help="Aetos, the Keystone-protected reverse proxy of the Prometheus API, "
         "found in the Keystone catalog as service type metric-storage.")

AETOS_CLIENT_OPTS = [
    cfg.StrOpt(
        "interface",
        default="public",
        choices=["public", "internal", "admin"],
        help="Keystone endpoint interface used to find Aetos in the catalog."),
    cfg.StrOpt(
        "region_name",
        help="Region used to find Aetos in the Keystone catalog."),
    cfg.StrOpt(
        "fqdn_label",
        default="fqdn",
        help="Prometheus label that holds a compute host's FQDN."),
    cfg.StrOpt(
        "instance_uuid_label",
        default="resource",
        help="Prometheus label that holds an instance's UUID."),
    cfg.URIOpt(
        "endpoint_override",
        schemes=["http", "https"],
        help="Aetos URL to use instead of the catalog's (the token still "
             "comes from Keystone)."),
    cfg.FloatOpt(
        "timeout",
        default=5.0,
        min=0.1,
        help="Seconds allowed for one Aetos query."),
    cfg.StrOpt(
        "auth_mode",
        default="keystone",
        choices=[("keystone", "Find Aetos in the Keystone catalog and send a "
                              "token from [service_credentials]."),
                 ("noauth", "Aetos runs with auth_mode = noauth (labs and "
                            "tests only): no Keystone, endpoint_override is "
                            "required and requests carry the X-Project-Id and "
                            "X-Roles headers below.")],
        help="How the relay authenticates to Aetos."),
    cfg.StrOpt(
        "noauth_project_id",
        default="alarm-relay",
        help="X-Project-Id header sent when auth_mode is noauth."),
    cfg.ListOpt(
        "noauth_roles",
        default=["admin"],
        help="X-Roles header sent when auth_mode is noauth (admin sees every "
             "project's metrics)."),
    cfg.StrOpt(
        "cafile",
        help="CA bundle used to verify Aetos's TLS certificate (default: the "
             "system's)."),
    cfg.StrOpt(
        "certfile",
        help="Client certificate presented to Aetos."),
    cfg.StrOpt(
        "keyfile",
        help="Private key of certfile."),
    cfg.BoolOpt(
        "insecure",
        default=False,
        help="Skip TLS verification of Aetos. Never in production: a warning "
             "is logged at start-up."),
    cfg.IntOpt(
        "max_concurrency",
        default=8,
        min=1,
        help="Most Aetos requests in flight at once."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    register_group_opts(conf, aetos_client_group, AETOS_CLIENT_OPTS)


def list_opts() -> list:
    return [(aetos_client_group, AETOS_CLIENT_OPTS)]
