"""Aetos: the Keystone-protected Prometheus API, found as ``metric-storage``.

In keystone mode the endpoint comes from the catalog (interface and region
from [aetos_client]) or from ``endpoint_override``, and each request carries
``X-Auth-Token``; a 401 makes the token be fetched again once.  In noauth mode
(labs, tests) the endpoint is ``endpoint_override`` and requests carry the
identity headers Aetos trusts then (``X-Project-Id``, ``X-Roles``).

Aetos filters the answers of a token without the admin or service role down to
the token's project: node metrics silently come back empty.  A 403 and an
empty answer where data is expected are explained with that fix.
"""

from __future__ import annotations

import concurrent.futures
import ssl
from collections.abc import Sequence

from oslo_config import cfg
from oslo_log import log

from daemon.datasources import base, keystone
from daemon.exception import DatasourceError

__all__ = ["AetosDatasource", "PRIVILEGED_ROLES"]

LOG = log.getLogger(__name__)

#: Roles whose tokens get unfiltered answers from Aetos.
PRIVILEGED_ROLES = frozenset({"admin", "service"})


class AetosDatasource(base.Datasource):
    """The Aetos backend.

    :param keystone_session: token and catalog lookups; None in noauth mode
    :param interface: catalog interface (public, internal, admin)
    :param region_name: catalog region, None for any
    :param endpoint_override: URL used instead of the catalog's
    :param noauth_headers: identity headers sent in noauth mode
    """

    NAME = "aetos"

    def __init__(self, *, keystone_session: keystone.KeystoneSession | None,
                 interface: str = "public", region_name: str | None = None,
                 endpoint_override: str | None = None,
                 noauth_headers: dict[str, str] | None = None,
                 timeout: float = 5.0, max_concurrency: int = 8,
                 ssl_context: ssl.SSLContext | None = None,
                 fqdn_label: str = "fqdn",
                 instance_uuid_label: str = "resource") -> None:
        super().__init__(timeout=timeout, max_concurrency=max_concurrency,
                         ssl_context=ssl_context, fqdn_label=fqdn_label,
                         instance_uuid_label=instance_uuid_label)
        if keystone_session is None and not endpoint_override:
            raise DatasourceError(
                backend=self.NAME,
                problem="[aetos_client] auth_mode = noauth needs endpoint_override")
        self.keystone = keystone_session
        self.interface = interface
        self.region_name = region_name
        self.endpoint_override = endpoint_override
        self._noauth_headers = dict(noauth_headers or {})
        self._endpoint: str | None = None

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, *,
                  executor: concurrent.futures.Executor | None = None) -> AetosDatasource:
        """Build from [aetos_client] and [service_credentials].

        :param executor: where keystoneauth1's blocking calls run
        :raises DatasourceError: an impossible combination of options
        """
        group = conf.aetos_client
        noauth = group.auth_mode == "noauth"
        headers = None
        if noauth:
            headers = {"X-Project-Id": group.noauth_project_id,
                       "X-Roles": ",".join(group.noauth_roles)}
        ssl_context = base.make_ssl_context(
            cafile=group.cafile, certfile=group.certfile, keyfile=group.keyfile,
            insecure=group.insecure, what="Aetos")
        return cls(
            keystone_session=None if noauth else keystone.KeystoneSession(
                conf, executor=executor),
            interface=group.interface, region_name=group.region_name,
            endpoint_override=group.endpoint_override, noauth_headers=headers,
            timeout=group.timeout, max_concurrency=group.max_concurrency,
            ssl_context=ssl_context, fqdn_label=group.fqdn_label,
            instance_uuid_label=group.instance_uuid_label)

    @property
    def where(self) -> str:
        """Where the endpoint comes from, for messages."""
        if self.endpoint_override:
            return self.endpoint_override
        return (f"catalog '{keystone.SERVICE_TYPE}' interface '{self.interface}' "
                f"region '{self.region_name or 'any'}'")

    async def endpoint(self) -> str:
        """The Aetos URL (catalog lookup cached until a connection error).

        :raises DatasourceError: not in the catalog, Keystone failures
        """
        return await self._base_url()

    async def filtered(self) -> str | None:
        """Why Aetos may filter our answers to one project, or None."""
        if self.keystone is None:
            roles = [r.strip() for r in self._noauth_headers.get("X-Roles", "").split(",")]
            project = self._noauth_headers.get("X-Project-Id")
        else:
            try:
                roles = await self.keystone.get_roles()
                project = await self.keystone.get_project_id()
            except DatasourceError:
                return None
        if PRIVILEGED_ROLES & set(roles):
            return None
        return (f"Aetos filters answers to project {project} for a token with roles "
                f"{', '.join(sorted(roles)) or 'none'} -- {keystone.FORBIDDEN_HINT}")

    async def _base_url(self) -> str:
        if self.endpoint_override:
            return self.endpoint_override
        if self._endpoint is None:
            self._endpoint = await self.keystone.get_endpoint(
                service_type=keystone.SERVICE_TYPE, interface=self.interface,
                region_name=self.region_name)
            LOG.info("Aetos endpoint from the Keystone catalog: %s", self._endpoint)
        return self._endpoint

    async def _headers(self) -> dict[str, str]:
        if self.keystone is None:
            return dict(self._noauth_headers)
        return {"X-Auth-Token": await self.keystone.get_token()}

    async def _reauthenticate(self) -> bool:
        if self.keystone is None:
            return False
        self.keystone.invalidate()
        self._endpoint = None
        return True

    def _explain(self, status: int, detail: str, url: str) -> str:
        if status == 401:
            return (f"{url} answered 401 Unauthorized even with a new token "
                    f"({detail}) -- {keystone.UNAUTHORIZED_HINT}")
        if status == 403:
            return f"{url} answered 403 Forbidden ({detail}) -- {keystone.FORBIDDEN_HINT}"
        return super()._explain(status, detail, url)

    async def _get(self, path: str, params: Sequence[tuple[str, str]]):
        try:
            return await super()._get(path, list(params))
        except DatasourceError as err:
            # A connection failure may mean the catalog changed: look it up again.
            if "cannot reach" in str(err) and not self.endpoint_override:
                self._endpoint = None
            raise
