"""The daemon's HTTP surface besides the webhook: /healthz, /readyz and /metrics.

``service.py`` builds the application, lets the webhook receiver add its
route, and runs it with an explicit AppRunner/TCPSite.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from daemon import telemetry

__all__ = ["build_app"]


def build_app(*, max_body_size: int,
              readiness: Callable[[], Mapping[str, bool]]) -> web.Application:
    """Return the aiohttp application with the health and metrics routes.

    :param max_body_size: largest request body accepted (413 above it)
    :param readiness: returns the named readiness checks; /readyz is 200
        only when all of them are true
    """
    app = web.Application(client_max_size=max_body_size)

    async def healthz(request: web.Request) -> web.Response:
        # Liveness: the event loop answers.  Nothing else is checked on purpose,
        # so a broker or Alertmanager outage never gets the daemon restarted.
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        checks = dict(readiness())
        ready = all(checks.values())
        return web.json_response({"ready": ready, "checks": checks},
                                 status=200 if ready else 503)

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(telemetry.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
