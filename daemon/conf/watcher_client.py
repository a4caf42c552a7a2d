"""Options of the [watcher_client] group: how the Watcher bridge finds and calls Watcher's API.

Keystone credentials live in [service_credentials] (see service_credentials.py),
as for Aetos: the bridge's service account needs the admin role for audits.
"""

from oslo_config import cfg

from daemon.conf._group import register_group_opts

__all__ = ["SERVICE_TYPE", "WATCHER_CLIENT_OPTS", "list_opts", "register_opts",
           "watcher_client_group"]

#: Watcher's service type in the Keystone catalog.
SERVICE_TYPE = "infra-optim"

watcher_client_group = cfg.OptGroup(
    name="watcher_client",
    title="Watcher client",
    help="Watcher's API, found in the Keystone catalog as service type "
         "infra-optim.")

WATCHER_CLIENT_OPTS = [
    cfg.StrOpt(
        "interface",
        default="public",
        choices=["public", "internal", "admin"],
        help="Keystone endpoint interface used to find Watcher in the catalog."),
    cfg.StrOpt(
        "region_name",
        help="Region used to find Watcher in the Keystone catalog."),
    cfg.URIOpt(
        "endpoint_override",
        schemes=["http", "https"],
        help="Watcher API URL to use instead of the catalog's (the token "
             "still comes from Keystone unless auth_mode is noauth)."),
    cfg.StrOpt(
        "api_version",
        default="1.4",
        regex=r"^1\.([4-9]|[1-9][0-9])$",
        help="Watcher API microversion sent in the OpenStack-API-Version "
             "header (infra-optim 1.4 introduced the webhook API)."),
    cfg.StrOpt(
        "auth_mode",
        default="keystone",
        choices=[("keystone", "Find Watcher in the Keystone catalog and send a "
                              "token from [service_credentials]."),
                 ("noauth", "Watcher runs with enable_authentication = False "
                            "(labs and tests only): no Keystone, "
                            "endpoint_override is required and requests carry "
                            "the X-Project-Id and X-Roles headers below.")],
        help="How the bridge authenticates to Watcher."),
    cfg.StrOpt(
        "noauth_project_id",
        default="alarm-relay",
        help="X-Project-Id header sent when auth_mode is noauth."),
    cfg.ListOpt(
        "noauth_roles",
        default=["admin"],
        help="X-Roles header sent when auth_mode is noauth (Watcher wants "
             "admin for audits and audit templates)."),
    cfg.FloatOpt(
        "timeout",
        default=10.0,
        min=0.1,
        help="Seconds allowed for one request to Watcher."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    register_group_opts(conf, watcher_client_group, WATCHER_CLIENT_OPTS)


def list_opts() -> list:
    return [(watcher_client_group, WATCHER_CLIENT_OPTS)]
