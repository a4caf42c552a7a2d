"""Options of the [datasources] group: where resource metrics come from."""

from oslo_config import cfg

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
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(datasources_group)
    conf.register_opts(DATASOURCES_OPTS, group=datasources_group)


def list_opts() -> list:
    return [(datasources_group, DATASOURCES_OPTS)]
