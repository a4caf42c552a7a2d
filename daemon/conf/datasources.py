"""Options of the [datasources] group: where resource metrics come from."""

from oslo_config import cfg

from daemon.conf._group import register_group_opts

__all__ = ["DATASOURCES_OPTS", "datasources_group", "list_opts", "register_opts"]

datasources_group = cfg.OptGroup(
    name="datasources",
    title="Metric datasources",
    help="Backends asked, in order, to resolve and enrich each alarm's resource.")

DATASOURCES_OPTS = [
    cfg.ListOpt(
        "metrics",
        default=[],
        item_type=cfg.types.String(choices=["aetos", "prometheus"]),
        help="Ordered list of metric backends: aetos (Keystone-protected "
             "Prometheus API, see [aetos_client]) and/or prometheus (direct, "
             "see [prometheus_client]). Empty: no metric lookups. Rolling back "
             "from Aetos to Prometheus is a change of this option."),
    cfg.FloatOpt(
        "resolve_timeout",
        default=3.0,
        min=0.1,
        help="Seconds one alarm's resolution and enrichment may take in all; "
             "what is not known by then is left unresolved with a reason."),
    cfg.FloatOpt(
        "cache_ttl",
        default=300.0,
        min=1.0,
        help="Seconds a resolved host FQDN or instance UUID is reused."),
    cfg.FloatOpt(
        "negative_cache_ttl",
        default=60.0,
        min=0.0,
        help="Seconds a lookup that found nothing (or found a collision) is "
             "reused before asking again."),
    cfg.FloatOpt(
        "refresh_interval",
        default=60.0,
        min=1.0,
        help="Seconds between two background refreshes of the host index "
             "and of cache entries about to expire."),
    cfg.FloatOpt(
        "failure_backoff",
        default=10.0,
        min=0.0,
        help="Seconds a backend that failed (unreachable, timed out, refused "
             "the credentials) is skipped before it is asked again."),
    cfg.StrOpt(
        "instance_name_label",
        default="domain",
        help="Label of libvirt metrics holding the domain name "
             "(instance-0000000a) that instance_uuid_label is looked up from."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    register_group_opts(conf, datasources_group, DATASOURCES_OPTS)


def list_opts() -> list:
    return [(datasources_group, DATASOURCES_OPTS)]
