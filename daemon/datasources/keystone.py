"""Keystone, off the event loop: a keystoneauth1 session from [service_credentials].

keystoneauth1 is blocking (requests), so every call that may touch the network
(token, catalog) runs in a thread: ``asyncio.to_thread`` or the executor the
caller passes in.  Its failures become :class:`~daemon.exception.DatasourceError`
with the fix in the message; no token or password ever reaches a log or an
error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from oslo_log import log

from daemon.exception import DatasourceError

__all__ = [
    "FORBIDDEN_HINT",
    "KeystoneSession",
    "SERVICE_TYPE",
    "UNAUTHORIZED_HINT",
    "not_registered_message",
]

LOG = log.getLogger(__name__)

#: Aetos's service type in the Keystone catalog.
SERVICE_TYPE = "metric-storage"

#: The fix for a 401, from Keystone or from Aetos.
UNAUTHORIZED_HINT = ("check [service_credentials] (auth_url, username, password, "
                     "project and domain names): Keystone did not accept them")
#: The fix for a 403 or a project-filtered answer from Aetos.
FORBIDDEN_HINT = ("the service account needs the admin or service role on a "
                  "project-scoped token ([service_credentials] project_name)")

_T = TypeVar("_T")


def not_registered_message(interface: str, region_name: str | None) -> str:
    """The seed's error for a catalog miss, with where we looked."""
    return (f"Aetos service not registered in Keystone (service type "
            f"'{SERVICE_TYPE}', interface '{interface}', region "
            f"'{region_name or 'any'}') -- check 'openstack catalog show "
            f"{SERVICE_TYPE}' and register the endpoint, or set [aetos_client] "
            "interface/region_name/endpoint_override")


class KeystoneSession:
    """Token and endpoint lookups through keystoneauth1, run in threads.

    keystoneauth1 caches the token and re-authenticates when it expires;
    :meth:`invalidate` forces a new one (after a 401 from Aetos).

    :param conf: the relay's configuration
    :param group: the option group holding the keystoneauth1 options
    :param executor: where blocking calls run (default: asyncio's)
    """

    def __init__(self, conf: cfg.ConfigOpts, *, group: str = "service_credentials",
                 executor: concurrent.futures.Executor | None = None) -> None:
        self._conf = conf
        self._group = group
        self._executor = executor
        self._auth: Any = None
        self._session: Any = None

    @property
    def auth_url(self) -> str | None:
        """The configured Keystone URL (for messages)."""
        try:
            return getattr(self._conf[self._group], "auth_url", None)
        except cfg.NoSuchOptError:  # pragma: no cover - plugin without auth_url
            return None

    def _load(self) -> None:
        """Build auth plugin and session (cheap, no network)."""
        if self._session is not None:
            return
        try:
            auth = ks_loading.load_auth_from_conf_options(self._conf, self._group)
        except ks_exc.MissingRequiredOptions as err:
            missing = ", ".join(o.dest for o in err.options)
            raise DatasourceError(
                backend="keystone",
                problem=f"[{self._group}] is missing {missing} -- set the "
                        "service account's credentials") from err
        except ks_exc.NoMatchingPlugin as err:
            raise DatasourceError(
                backend="keystone",
                problem=f"[{self._group}] auth_type: {err}") from err
        if auth is None:
            raise DatasourceError(
                backend="keystone",
                problem=f"[{self._group}] auth_type is not set -- set auth_type = "
                        "password and the service account's credentials")
        if self._conf[self._group].insecure:
            LOG.warning("TLS verification of Keystone is turned off "
                        "([%s] insecure = True); never do this in production.",
                        self._group)
        self._session = ks_loading.load_session_from_conf_options(
            self._conf, self._group, auth=auth)
        self._auth = auth

    async def _run(self, func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(func, *args, **kwargs))

    async def get_token(self) -> str:
        """Return a valid token (new or cached).

        :raises DatasourceError: Keystone unreachable, credentials refused
        """
        return await self._run(self._get_token_sync)

    async def get_endpoint(self, *, service_type: str = SERVICE_TYPE,
                           interface: str = "public",
                           region_name: str | None = None) -> str:
        """Return the catalog URL of ``service_type``.

        :raises DatasourceError: not in the catalog (the seed's message with
            interface and region), Keystone unreachable, credentials refused
        """
        return await self._run(self._get_endpoint_sync, service_type, interface,
                               region_name)

    async def get_project_id(self) -> str | None:
        """Return the project id of the token (None when not project-scoped)."""
        return await self._run(self._call, lambda: self._auth.get_project_id(self._session))

    async def get_roles(self) -> list[str]:
        """Return the role names carried by the token."""
        access = await self._run(self._call, lambda: self._auth.get_access(self._session))
        return list(access.role_names or ())

    def invalidate(self) -> bool:
        """Forget the cached token; True when there was one (cheap, no network)."""
        if self._auth is None:
            return False
        return bool(self._auth.invalidate())

    def _get_token_sync(self) -> str:
        return self._call(lambda: self._session.get_token())

    def _get_endpoint_sync(self, service_type: str, interface: str,
                           region_name: str | None) -> str:
        def lookup() -> str | None:
            return self._session.get_endpoint(
                service_type=service_type, interface=interface,
                region_name=region_name)
        try:
            url = self._call(lookup)
        except DatasourceError as err:
            if isinstance(err.__cause__, ks_exc.EndpointNotFound):
                url = None
            else:
                raise
        if not url:
            raise DatasourceError(backend="aetos",
                               problem=not_registered_message(interface, region_name))
        return url

    def _call(self, func: Callable[[], _T]) -> _T:
        """Run a keystoneauth1 call, translating its errors (in a thread)."""
        self._load()
        where = self.auth_url or "Keystone"
        try:
            return func()
        except ks_exc.EndpointNotFound as err:
            raise DatasourceError(backend="keystone", problem=str(err)) from err
        except ks_exc.Unauthorized as err:
            raise DatasourceError(
                backend="keystone",
                problem=f"{where} answered 401 Unauthorized -- {UNAUTHORIZED_HINT}"
            ) from err
        except ks_exc.Forbidden as err:
            raise DatasourceError(
                backend="keystone",
                problem=f"{where} answered 403 Forbidden -- {FORBIDDEN_HINT}") from err
        except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout,
                ks_exc.DiscoveryFailure) as err:
            raise DatasourceError(
                backend="keystone",
                problem=f"cannot reach Keystone at {where}: {_first_line(err)} -- "
                        f"check [{self._group}] auth_url and that Keystone is up"
            ) from err
        except ks_exc.ClientException as err:
            raise DatasourceError(
                backend="keystone",
                problem=f"Keystone at {where} failed: {_first_line(err)}") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
