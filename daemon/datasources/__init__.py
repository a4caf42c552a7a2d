"""Datasources: where resources are resolved and metrics fetched (``[datasources]``).

Aetos (the Keystone-authenticated Prometheus API) and plain Prometheus, asked
in the order of ``[datasources] metrics`` by the :class:`DatasourceResolver`,
which implements the transformer's ``Resolver`` protocol (docs/aetos.md).
:func:`build_resolver` is the entry point.
"""

from __future__ import annotations

import concurrent.futures

from oslo_config import cfg

from daemon.datasources.aetos import AetosDatasource
from daemon.datasources.base import Datasource
from daemon.datasources.prometheus import PrometheusDatasource
from daemon.datasources.resolver import DatasourceResolver, ResolverSettings

__all__ = ["Datasource", "DatasourceResolver", "ResolverSettings", "build_backends",
           "build_resolver"]


def build_backends(conf: cfg.ConfigOpts, *,
                   executor: concurrent.futures.Executor | None = None
                   ) -> list[Datasource]:
    """The backends of ``[datasources] metrics``, in order, not started.

    :param executor: where keystoneauth1's blocking calls run
    :raises DatasourceError: an impossible combination of options
    """
    backends: list[Datasource] = []
    for name in dict.fromkeys(conf.datasources.metrics):
        if name == AetosDatasource.NAME:
            backends.append(AetosDatasource.from_conf(conf, executor=executor))
        elif name == PrometheusDatasource.NAME:
            backends.append(PrometheusDatasource.from_conf(conf))
    return backends


def build_resolver(conf: cfg.ConfigOpts, *,
                   executor: concurrent.futures.Executor | None = None
                   ) -> DatasourceResolver | None:
    """The resolver of ``[datasources]``, or None when ``metrics`` is empty.

    :param conf: the relay's configuration
    :param executor: where keystoneauth1's blocking calls run (default:
        asyncio's default executor)
    :raises DatasourceError: an impossible combination of options
    """
    backends = build_backends(conf, executor=executor)
    if not backends:
        return None
    return DatasourceResolver(backends, settings=ResolverSettings.from_conf(conf))
