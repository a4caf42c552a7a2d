"""The daemon's HTTP API: /healthz, /readyz, /metrics, and the webhook's routes.

:func:`build_app` builds the application with the health and metrics routes;
the webhook receiver adds its own; :func:`serve` runs it with an explicit
AppRunner/TCPSite (aiohttp's own lifecycle, signals left to oslo.service).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from oslo_log import log
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from daemon import telemetry

LOG = log.getLogger(__name__)

__all__ = ["build_app", "serve"]


def build_app(*, max_body_size: int,
              readiness: Callable[[], Mapping[str, bool]],
              details: Callable[[], Mapping[str, Any]] | None = None) -> web.Application:
    """Return the aiohttp application with the health and metrics routes.

    :param max_body_size: largest request body accepted (413 above it)
    :param readiness: returns the named readiness checks; /readyz is 200
        only when all of them are true
    :param details: more JSON-able facts /readyz shows (they never make it
        fail), e.g. ``{"coordination": {...}}`` with several relays
    """
    app = web.Application(client_max_size=max_body_size)

    async def healthz(request: web.Request) -> web.Response:
        # Liveness: the event loop answers.  Nothing else is checked on purpose,
        # so a broker or Alertmanager outage never gets the daemon restarted.
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        checks = dict(readiness())
        ready = all(checks.values())
        body: dict[str, Any] = {"ready": ready, "checks": checks}
        if details is not None:
            body.update(details())
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(telemetry.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(app: web.Application, host: str, port: int,
                ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    """Listen on ``host:port`` (port 0: any free one) and serve ``app``.

    :returns: the runner (``cleanup()`` stops it) and the port listened on
    :raises OSError: the address cannot be bound
    """
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound = runner.addresses[0][1]
    LOG.info("Listening on %s:%d%s (webhook /v1/alerts, /healthz, /readyz, /metrics)",
             host, bound, " with TLS" if ssl_context is not None else "")
    return runner, bound
