"""Watcher's REST API, as the bridge uses it: blocking keystoneauth1 calls.

The bridge runs a plain threaded listener, so these calls block their thread
and never an event loop. In ``keystone`` mode the token and Watcher's endpoint
(service type ``infra-optim``, ``[watcher_client] interface`` and
``region_name``) come from Keystone with the credentials of
``[service_credentials]``, loaded exactly as the relay loads them for Aetos;
every request carries the microversion header ``OpenStack-API-Version:
infra-optim <api_version>``.

Every failure is a :class:`~daemon.exception.WatcherError` saying whether it is
``recoverable`` (ask again later: Watcher or Keystone unreachable, 5xx, 401/403,
catalog miss) or a permanent refusal of this request (any other 4xx), with a
short ``reason`` code. Tokens and passwords never reach a message.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from oslo_log import log

from daemon.conf.watcher_client import SERVICE_TYPE
from daemon.exception import WatcherError

__all__ = ["Audit", "WatcherClient", "UNAUTHORIZED_HINT"]

LOG = log.getLogger(__name__)

CREDENTIALS_GROUP = "service_credentials"
#: The fix for a 401 from Keystone or Watcher.
UNAUTHORIZED_HINT = ("check [service_credentials] (auth_url, username, password, "
                     "project and domain names): Keystone did not accept them")


@dataclasses.dataclass(frozen=True, slots=True)
class Audit:
    """The fields of a Watcher audit the bridge reads.

    :ivar uuid: Watcher's id of the audit
    :ivar name: its (unique) name
    :ivar state: PENDING, ONGOING, SUCCEEDED, FAILED, CANCELLED, SUSPENDED...
    """

    uuid: str
    name: str
    state: str


class WatcherClient:
    """One keystoneauth1 session to Watcher, built on first use (no network in ``__init__``).

    :param conf: the configuration ([watcher_client], [service_credentials])
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self._conf = conf
        self._options = conf.watcher_client
        self._adapter: ks_adapter.Adapter | None = None
        self._auth: Any = None

    # -- set-up

    @property
    def noauth(self) -> bool:
        return self._options.auth_mode == "noauth"

    def _load(self) -> ks_adapter.Adapter:
        if self._adapter is not None:
            return self._adapter
        auth = None
        if not self.noauth:
            try:
                auth = ks_loading.load_auth_from_conf_options(self._conf, CREDENTIALS_GROUP)
            except ks_exc.MissingRequiredOptions as err:
                missing = ", ".join(o.dest for o in err.options)
                raise WatcherError(
                    problem=f"[{CREDENTIALS_GROUP}] is missing {missing} -- set the "
                            "service account's credentials",
                    recoverable=False, reason="config") from err
            except ks_exc.NoMatchingPlugin as err:
                raise WatcherError(problem=f"[{CREDENTIALS_GROUP}] auth_type: {err}",
                                   recoverable=False, reason="config") from err
            if auth is None:
                raise WatcherError(
                    problem=f"[{CREDENTIALS_GROUP}] auth_type is not set -- set auth_type = "
                            "password and the service account's credentials "
                            "(or [watcher_client] auth_mode = noauth for a lab Watcher)",
                    recoverable=False, reason="config")
        if self._conf[CREDENTIALS_GROUP].insecure:
            LOG.warning("TLS verification of Keystone and Watcher is turned off "
                        "([%s] insecure = True); never do this in production.",
                        CREDENTIALS_GROUP)
        session = ks_loading.load_session_from_conf_options(
            self._conf, CREDENTIALS_GROUP, auth=auth)
        headers = {"OpenStack-API-Version": f"{SERVICE_TYPE} {self._options.api_version}",
                   "Accept": "application/json"}
        if self.noauth:
            headers["X-Project-Id"] = self._options.noauth_project_id
            headers["X-Roles"] = ",".join(self._options.noauth_roles)
            headers["X-User-Id"] = "alarm-relay-watcher"
        self._auth = auth
        self._adapter = ks_adapter.Adapter(
            session, auth=auth, service_type=SERVICE_TYPE,
            interface=self._options.interface, region_name=self._options.region_name,
            endpoint_override=self._options.endpoint_override,
            additional_headers=headers, raise_exc=False)
        return self._adapter

    def _where(self) -> str:
        if self._options.endpoint_override:
            return self._options.endpoint_override
        return (f"Watcher (catalog service type '{SERVICE_TYPE}', interface "
                f"'{self._options.interface}', region '{self._options.region_name or 'any'}')")

    def check(self) -> str:
        """Authenticate and find Watcher's endpoint (no call to Watcher itself).

        :returns: the endpoint URL
        :raises WatcherError: credentials refused (``recoverable`` False: fix the
            configuration), Keystone unreachable, not in the catalog
        """
        adapter = self._load()
        if self.noauth:
            return str(self._options.endpoint_override)
        try:
            adapter.session.get_token(self._auth)
            url = adapter.get_endpoint()
        except ks_exc.Unauthorized as err:
            raise WatcherError(
                problem=f"Keystone at {self._auth_url()} answered 401 Unauthorized -- "
                        f"{UNAUTHORIZED_HINT}",
                recoverable=False, reason="unauthorized") from err
        except ks_exc.EndpointNotFound as err:
            raise WatcherError(problem=self._not_registered(), recoverable=True,
                               reason="catalog") from err
        except ks_exc.ClientException as err:
            raise self._keystone_error(err) from err
        if not url:
            raise WatcherError(problem=self._not_registered(), recoverable=True,
                               reason="catalog")
        return str(url)

    def _auth_url(self) -> str:
        try:
            return str(getattr(self._conf[CREDENTIALS_GROUP], "auth_url", None) or "Keystone")
        except cfg.NoSuchOptError:  # pragma: no cover - plugin without auth_url
            return "Keystone"

    def _not_registered(self) -> str:
        return (f"Watcher is not registered in Keystone (service type '{SERVICE_TYPE}', "
                f"interface '{self._options.interface}', region "
                f"'{self._options.region_name or 'any'}') -- check 'openstack catalog show "
                f"{SERVICE_TYPE}', or set [watcher_client] interface/region_name/"
                "endpoint_override")

    def _keystone_error(self, err: Exception) -> WatcherError:
        if isinstance(err, ks_exc.Unauthorized):
            return WatcherError(problem=f"Keystone at {self._auth_url()} answered 401 "
                                        f"Unauthorized -- {UNAUTHORIZED_HINT}",
                                recoverable=True, reason="unauthorized")
        if isinstance(err, ks_exc.EndpointNotFound):
            return WatcherError(problem=self._not_registered(), recoverable=True,
                                reason="catalog")
        if isinstance(err, (ks_exc.ConnectFailure, ks_exc.ConnectTimeout,
                            ks_exc.DiscoveryFailure)):
            return WatcherError(problem=f"cannot reach Keystone or {self._where()}: "
                                        f"{_first_line(err)}",
                                recoverable=True, reason="unreachable")
        return WatcherError(problem=f"{_first_line(err)}", recoverable=True,
                            reason="unreachable")

    # -- requests

    def _request(self, method: str, path: str, *, body: Any = None,
                 ok: tuple[int, ...] = (200,),
                 allow: tuple[int, ...] = ()) -> tuple[int, Any]:
        """One request; returns (status, JSON body) for ``ok`` and ``allow`` statuses.

        :raises WatcherError: anything else (recoverable or not, see the module doc)
        """
        adapter = self._load()
        kwargs: dict[str, Any] = {"timeout": self._options.timeout}
        if body is not None:
            kwargs["json"] = body
        for attempt in (1, 2):
            try:
                resp = adapter.request(path, method, **kwargs)
            except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout) as err:
                raise WatcherError(problem=f"cannot reach {self._where()}: "
                                           f"{_first_line(err)}",
                                   recoverable=True, reason="unreachable") from err
            except ks_exc.RequestTimeout as err:
                raise WatcherError(problem=f"{self._where()} did not answer {method} {path} "
                                           f"within {self._options.timeout}s",
                                   recoverable=True, reason="unreachable") from err
            except ks_exc.ClientException as err:
                raise self._keystone_error(err) from err
            status = resp.status_code
            if status == 401 and attempt == 1 and self._auth is not None:
                # The token may have been revoked or expired early: get a new one once.
                self._auth.invalidate()
                continue
            break
        if status in ok or status in allow:
            try:
                return status, (resp.json() if resp.content else None)
            except ValueError:
                return status, None
        fault = _fault(resp)
        what = f"{method} /{path}"
        if status == 401:
            raise WatcherError(problem=f"Watcher answered 401 Unauthorized to {what}: {fault} "
                                       f"-- {UNAUTHORIZED_HINT}",
                               recoverable=True, reason="unauthorized")
        if status == 403:
            raise WatcherError(problem=f"Watcher answered 403 Forbidden to {what}: {fault} -- "
                                       "the service account needs the admin role "
                                       "([service_credentials] project_name)",
                               recoverable=True, reason="forbidden")
        if status >= 500 or status in (408, 429):
            raise WatcherError(problem=f"Watcher answered {status} to {what}: {fault}",
                               recoverable=True, reason="server_error")
        raise WatcherError(problem=f"Watcher refused {what} with {status}: {fault}",
                           recoverable=False, reason="refused")

    def template_uuid(self, ident: str) -> str:
        """The UUID of an audit template given by name or UUID.

        :raises WatcherError: ``template_not_found`` (permanent) when there is none
        """
        status, body = self._request("GET", f"v1/audit_templates/{_quote(ident)}",
                                     allow=(404,))
        if status == 404:
            raise WatcherError(problem=f"audit template {ident!r} not found in Watcher",
                               recoverable=False, reason="template_not_found")
        return str(body["uuid"])

    def find_audit(self, name: str) -> Audit | None:
        """The audit named ``name``, or None."""
        status, body = self._request("GET", f"v1/audits/{_quote(name)}", allow=(404,))
        if status == 404:
            return None
        return _audit(body)

    def create_audit(self, *, name: str, template_uuid: str,
                     parameters: Mapping[str, Any]) -> Audit:
        """Create an EVENT audit named ``name`` from the template (or return the one of that name).

        :raises WatcherError: permanent when Watcher refuses (parameters, template)
        """
        body = {"name": name, "audit_type": "EVENT", "audit_template_uuid": template_uuid,
                "parameters": dict(parameters)}
        status, answer = self._request("POST", "v1/audits", body=body, ok=(200, 201),
                                       allow=(409,))
        if status == 409:
            # Another attempt (a crash before the state was saved) created it.
            existing = self.find_audit(name)
            if existing is not None:
                return existing
            raise WatcherError(problem=f"audit {name!r} conflicts but cannot be found",
                               recoverable=True, reason="server_error")
        return _audit(answer)

    def trigger(self, audit_uuid: str, body: Mapping[str, Any]) -> None:
        """``POST /v1/webhooks/<uuid>``: make the decision engine run the EVENT audit.

        :raises WatcherError: permanent for a 4xx (audit state refuses the trigger)
        """
        self._request("POST", f"v1/webhooks/{_quote(audit_uuid)}", body=dict(body),
                      ok=(200, 202, 204))


def _audit(body: Any) -> Audit:
    try:
        return Audit(uuid=str(body["uuid"]), name=str(body.get("name") or ""),
                     state=str(body.get("state") or ""))
    except (KeyError, TypeError) as err:
        raise WatcherError(problem="Watcher answered an audit without a uuid",
                           recoverable=True, reason="server_error") from err


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _fault(resp: Any) -> str:
    """Watcher's error text: ``error_message`` is JSON holding ``faultstring``."""
    try:
        message = resp.json().get("error_message")
        if isinstance(message, str):
            try:
                message = json.loads(message)
            except ValueError:
                return message[:300]
        if isinstance(message, dict):
            return str(message.get("faultstring") or message)[:300]
    except (ValueError, AttributeError):
        pass
    text = (getattr(resp, "text", "") or "").strip()
    return text[:300] or getattr(resp, "reason", "") or "no details"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__

