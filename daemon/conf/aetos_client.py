"""Options of the [aetos_client] group, named as in Watcher's Aetos datasource.

Keystone credentials live in [service_credentials] (see service_credentials.py).
"""

from oslo_config import cfg

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
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(aetos_client_group)
    conf.register_opts(AETOS_CLIENT_OPTS, group=aetos_client_group)


def list_opts() -> list:
    return [(aetos_client_group, AETOS_CLIENT_OPTS)]
