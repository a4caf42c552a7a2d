"""Options of the [service_credentials] group: keystoneauth1's standard loading options.

The relay's service account must hold the admin or service role: Aetos filters
the results of any other token down to its project, so node metrics would come
back empty.
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from daemon.conf._group import register_group_opts

__all__ = ["DEFAULT_TIMEOUT", "list_opts", "register_opts", "service_credentials_group"]

#: Seconds allowed for one Keystone request unless ``timeout`` is set: a thread
#: waiting on Keystone must not wait forever.
DEFAULT_TIMEOUT = 10

service_credentials_group = cfg.OptGroup(
    name="service_credentials",
    title="Keystone service credentials",
    help="Credentials of the relay's Keystone service account (admin or "
         "service role), used to find and call Aetos.")


def register_opts(conf: cfg.ConfigOpts) -> None:
    # keystoneauth1 registers its plugin's options (auth_url required) on first
    # load; a fresh group keeps them out of every later ConfigOpts.
    register_group_opts(conf, service_credentials_group)
    ks_loading.register_session_conf_options(conf, service_credentials_group.name)
    ks_loading.register_auth_conf_options(conf, service_credentials_group.name)
    conf.set_default("timeout", DEFAULT_TIMEOUT, group=service_credentials_group.name)


def list_opts() -> list:
    opts = (ks_loading.get_session_conf_options()
            + ks_loading.get_auth_common_conf_options()
            + ks_loading.get_auth_plugin_conf_options("password"))
    # The same option can come from two lists (e.g. auth-url); list each once.
    unique = {opt.dest: opt for opt in opts}
    return [(service_credentials_group, list(unique.values()))]
