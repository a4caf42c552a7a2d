"""Prometheus queried directly ([prometheus_client]), for clouds not on Aetos.

Same client as Aetos, without Keystone: host, port and path prefix make the
URL; optional basic auth and TLS (verified unless ``insecure``).
"""

from __future__ import annotations

import ssl

import aiohttp
from oslo_config import cfg
from oslo_utils import netutils

from daemon.datasources import base

__all__ = ["PrometheusDatasource"]


class PrometheusDatasource(base.Datasource):
    """A Prometheus server.

    :param url: base URL, path prefix included (``http://prom:9090/prometheus``)
    :param username: basic auth user (with ``password``)
    :param password: basic auth password; never logged
    """

    NAME = "prometheus"

    def __init__(self, *, url: str, username: str | None = None,
                 password: str | None = None, timeout: float = 5.0,
                 max_concurrency: int = 8, ssl_context: ssl.SSLContext | None = None,
                 fqdn_label: str = "fqdn", instance_uuid_label: str = "resource") -> None:
        super().__init__(timeout=timeout, max_concurrency=max_concurrency,
                         ssl_context=ssl_context, fqdn_label=fqdn_label,
                         instance_uuid_label=instance_uuid_label)
        self.url = url.rstrip("/")
        self._authorization = (
            aiohttp.encode_basic_auth(username, password or "") if username else None)

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> PrometheusDatasource:
        """Build from [prometheus_client]."""
        group = conf.prometheus_client
        scheme = "https" if group.use_tls else "http"
        prefix = (group.path_prefix or "").strip("/")
        url = f"{scheme}://{netutils.escape_ipv6(group.host)}:{group.port}"
        if prefix:
            url = f"{url}/{prefix}"
        ssl_context = None
        if group.use_tls:
            ssl_context = base.make_ssl_context(
                cafile=group.cafile, certfile=group.certfile, keyfile=group.keyfile,
                insecure=group.insecure, what="Prometheus")
        return cls(url=url, username=group.username, password=group.password,
                   timeout=group.timeout, max_concurrency=group.max_concurrency,
                   ssl_context=ssl_context, fqdn_label=group.fqdn_label,
                   instance_uuid_label=group.instance_uuid_label)

    @property
    def where(self) -> str:
        """The URL, for messages."""
        return self.url

    async def _base_url(self) -> str:
        return self.url

    async def _headers(self) -> dict[str, str]:
        return {"Authorization": self._authorization} if self._authorization else {}
