"""The Alertmanager webhook receiver: ``POST /v1/alerts`` (webhook v4).

Each configured Alertmanager cluster has its route, ``POST /v1/alerts/<name>``;
``POST /v1/alerts`` is the route of the only cluster when there is one.

The fast path next to the poller.  A delivery is authenticated (optional
basic auth or bearer token, compared in constant time), size-limited, decoded
and validated in full before anything is handed on: a body with one bad alert
is rejected whole (400), so nothing is ever half-stored.  The receiver keeps
no alert state: the valid alerts go to the injected ``on_alerts`` callable,
and the answer waits for it.

Status codes, chosen for Alertmanager (which retries 5xx and drops 4xx):

- 200 once ``on_alerts`` returned (the transitions are stored);
- 400 bad JSON, wrong ``version``, or an invalid alert (the JSON error names it);
- 401 missing or wrong credentials (with ``WWW-Authenticate``);
- 404 an unknown cluster, or ``/v1/alerts`` when several clusters are configured;
- 413 body over ``[webhook] max_body_size``; 415 not ``application/json``;
- 503 the outbox is full or the store's database fails (retry later); 500 any other
  internal failure.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hmac
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, final

from aiohttp import web
from oslo_config import cfg
from oslo_log import log

from daemon import model, telemetry
from daemon.conf import alertmanager as alertmanager_conf
from daemon.exception import ConfigError, OutboxFull, StoreError

__all__ = ["WebhookReceiver", "WebhookSettings", "PATH"]

LOG = log.getLogger(__name__)

PATH = "/v1/alerts"
_OFFLOAD_BYTES = 1 << 20
_MAX_REPORTED = 5


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookSettings:
    """``[webhook]`` options the receiver uses.

    :raises ConfigError: when both basic auth and a bearer token are set, or
        only half of basic auth
    """

    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    bearer_token_file: str | None = None
    max_body_size: int = 16 * 1024 * 1024
    replica_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if bool(self.username) != bool(self.password):
            raise ConfigError(group="webhook", option="username/password",
                              problem="set both or neither")
        if self.username and self.bearer_token_file:
            raise ConfigError(group="webhook", option="bearer_token_file",
                              problem="set either username/password or bearer_token_file")
        if self.max_body_size < 1:
            raise ConfigError(group="webhook", option="max_body_size", problem="must be positive")

    @property
    def authenticated(self) -> bool:
        return bool(self.username or self.bearer_token_file)

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> WebhookSettings:
        """Build from ``[webhook]`` and ``[lifecycle] replica_labels``."""
        wh = conf.webhook
        return cls(username=wh.username or None, password=wh.password or None,
                   bearer_token_file=wh.bearer_token_file or None,
                   max_body_size=wh.max_body_size,
                   replica_labels=tuple(conf.lifecycle.replica_labels or ()))


class _BadRequest(Exception):
    def __init__(self, status: int, error: str, where: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.where = where


@final
class WebhookReceiver:
    """Receives Alertmanager webhook deliveries and hands on their alerts.

    :param settings: a :class:`WebhookSettings`
    :param on_alerts: awaited with ``(alerts, source_url, cluster)``; returns
        once the transitions are stored; may raise ``OutboxFull`` or ``StoreError`` (-> 503)
    :param clusters: names of the Alertmanager clusters deliveries may come from
    """

    def __init__(self, *, settings: WebhookSettings,
                 on_alerts: Callable[[list[model.Alert], str, str], Awaitable[None]],
                 clusters: Sequence[str] = ("default",)) -> None:
        if not clusters:
            raise ValueError("at least one cluster is needed")
        self.settings = settings
        self._on_alerts = on_alerts
        self.clusters = tuple(clusters)
        self._cache = model.ParseCache(settings.replica_labels, max_size=100_000)
        self._token: tuple[float, bytes] | None = None

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts,
                  on_alerts: Callable[[list[model.Alert], str, str], Awaitable[None]],
                  ) -> WebhookReceiver:
        """Build from the ``[webhook]`` options, for every configured cluster."""
        return cls(settings=WebhookSettings.from_conf(conf), on_alerts=on_alerts,
                   clusters=[cluster.name for cluster in alertmanager_conf.clusters(conf)])

    def add_routes(self, app: web.Application) -> None:
        """Register ``POST /v1/alerts`` and ``POST /v1/alerts/{cluster}`` on ``app``.

        :param app: the daemon's one aiohttp application
        """
        app.router.add_post(PATH, self.handle)
        app.router.add_post(PATH + "/{cluster}", self.handle)

    def _cluster_of(self, request: web.Request) -> str:
        name = request.match_info.get("cluster")
        if name is None:
            if len(self.clusters) == 1:
                return self.clusters[0]
            raise _BadRequest(404, f"several Alertmanager clusters are configured: post to "
                                   f"{PATH}/<cluster>, one of {', '.join(self.clusters)}")
        if name not in self.clusters:
            raise _BadRequest(404, f"unknown Alertmanager cluster {name[:64]!r}; configured: "
                                   f"{', '.join(self.clusters)}")
        return name

    # -- authentication --------------------------------------------------

    def _expected_token(self) -> bytes | None:
        path = self.settings.bearer_token_file
        assert path
        try:
            mtime = os.stat(path).st_mtime
            if self._token is None or self._token[0] != mtime:
                with open(path, "rb") as token_file:
                    self._token = (mtime, token_file.read().strip())
        except OSError as err:
            LOG.error("Cannot read [webhook] bearer_token_file %s: %s", path, err.strerror)
            return None
        return self._token[1] or None

    def _authorized(self, header: str | None) -> bool:
        s = self.settings
        if not s.authenticated:
            return True
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if s.bearer_token_file:
            expected = self._expected_token()
            return (expected is not None and scheme.lower() == "bearer"
                    and hmac.compare_digest(value.encode(), expected))
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        assert s.username is not None and s.password is not None
        user_ok = hmac.compare_digest(user.encode(), s.username.encode())
        password_ok = hmac.compare_digest(password.encode(), s.password.encode())
        return bool(sep) and user_ok and password_ok

    # -- request ---------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """Handle one delivery (see the module docstring for the status codes)."""
        response = await self._handle(request)
        telemetry.WEBHOOK_REQUESTS.labels(code=str(response.status)).inc()
        return response

    async def _handle(self, request: web.Request) -> web.Response:
        if not self._authorized(request.headers.get("Authorization")):
            scheme = "Bearer" if self.settings.bearer_token_file else "Basic"
            LOG.warning("Webhook delivery from %s refused: missing or wrong credentials",
                        request.remote)
            return web.json_response(
                {"error": "missing or wrong credentials"}, status=401,
                headers={"WWW-Authenticate": f'{scheme} realm="alarm-relay"'})
        try:
            cluster = self._cluster_of(request)
            body = await self._read(request)
            if len(body) >= _OFFLOAD_BYTES:
                alerts, source = await asyncio.to_thread(self._decode, body)
            else:
                alerts, source = self._decode(body)
        except _BadRequest as bad:
            rejected = bad
        else:
            rejected = None
        if rejected is not None:
            # Logged outside the except block: oslo.log would append the
            # internal exception's text to the line, repeating the reason.
            LOG.warning("Webhook delivery from %s rejected (%d): %s", request.remote,
                        rejected.status, rejected.error)
            payload: dict[str, Any] = {"error": rejected.error}
            if rejected.where:
                payload["where"] = rejected.where
            return web.json_response(payload, status=rejected.status)
        source_url = source or f"webhook://{request.remote or 'unknown'}"
        try:
            await self._on_alerts(alerts, source_url, cluster)
        except OutboxFull as err:
            LOG.warning("Webhook delivery from %s deferred: %s", source_url, err)
            return web.json_response({"error": "outbox full, retry later"}, status=503,
                                     headers={"Retry-After": "10"})
        except StoreError as err:
            LOG.warning("Webhook delivery from %s deferred: %s", source_url, err)
            return web.json_response({"error": "store unavailable, retry later"}, status=503,
                                     headers={"Retry-After": "10"})
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.exception("Webhook delivery from %s failed internally", source_url)
            return web.json_response({"error": "internal error"}, status=500)
        return web.json_response({"status": "ok", "alerts": len(alerts)})

    async def _read(self, request: web.Request) -> bytes:
        limit = self.settings.max_body_size
        if request.content_length is not None and request.content_length > limit:
            raise _BadRequest(413, f"body larger than {limit} bytes")
        if request.content_type != "application/json":
            raise _BadRequest(415, f"content type must be application/json, "
                                   f"not {request.content_type[:60]!r}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise _BadRequest(413, f"body larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _decode(self, body: bytes) -> tuple[list[model.Alert], str | None]:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise _BadRequest(400, f"body is not JSON: {err}") from None
        if type(data) is not dict:
            raise _BadRequest(400, "body must be a JSON object", "$")
        version = data.get("version")
        if version != "4":
            raise _BadRequest(400, f"version must be \"4\", not {str(version)[:20]!r}",
                              "version")
        for name in ("receiver", "status", "externalURL", "groupKey"):
            if name in data and type(data[name]) is not str:
                raise _BadRequest(400, f"{name} must be a string", name)
        truncated = data.get("truncatedAlerts", 0)
        if type(truncated) is not int:
            raise _BadRequest(400, "truncatedAlerts must be an integer", "truncatedAlerts")
        objects = data.get("alerts")
        if type(objects) is not list:
            raise _BadRequest(400, "alerts must be a list", "alerts")
        parsed = model.parse_alerts(objects, cache=self._cache)
        if parsed.problems:
            bad = len(parsed.problems)
            shown = parsed.problems[:_MAX_REPORTED]
            telemetry.ALERTS_INVALID.labels(stage="webhook").inc(bad)
            message = "; ".join(f"alerts[{p.index}].{p.field} {p.problem}" for p in shown)
            if bad > len(shown):
                message += f" (and {bad - len(shown)} more)"
            raise _BadRequest(400, message, f"alerts[{shown[0].index}].{shown[0].field}")
        alerts = parsed.alerts
        if truncated:
            LOG.warning("Webhook delivery %s says %d alerts were truncated; the next poll "
                        "brings them", data.get("groupKey", "?"), truncated)
        return alerts, data.get("externalURL") or None
