"""Serve a WSGI application on one loopback port: ``python wsgi_serve.py --app mod:factory``.

Runs in its own process (started by :class:`tools.harness.services.Aetos`, usable for any WSGI
app such as Keystone) so the app's oslo.config globals and threads stay out of the test process.
uvicorn drives the app through a2wsgi's thread pool; without them it falls back to the
standard library's threaded wsgiref server.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
from collections.abc import Callable
from typing import Any


def load_app(spec: str, kwargs: dict[str, Any]) -> Callable[..., Any]:
    """Import ``module:factory`` and call it with ``kwargs`` to get the WSGI callable."""
    module_name, _, attr = spec.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(**kwargs)


def serve_uvicorn(app: Callable[..., Any], host: str, port: int) -> None:
    import uvicorn
    from a2wsgi import WSGIMiddleware

    uvicorn.run(WSGIMiddleware(app, workers=8), host=host, port=port, log_level="warning")


def serve_wsgiref(app: Callable[..., Any], host: str, port: int) -> None:
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer, make_server

    class _Threaded(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    with make_server(host, port, app, server_class=_Threaded) as server:
        server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app", required=True, help="module:factory returning a WSGI app")
    parser.add_argument("--kwargs", default="{}", help="JSON object passed to the factory")
    parser.add_argument("--server", choices=("auto", "uvicorn", "wsgiref"), default="auto")
    args = parser.parse_args(argv)

    # SIGTERM from the harness: exit promptly and quietly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = load_app(args.app, json.loads(args.kwargs))
    server = args.server
    if server == "auto":
        try:
            import a2wsgi  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            server = "wsgiref"
        else:
            server = "uvicorn"
    if server == "uvicorn":
        serve_uvicorn(app, args.host, args.port)
    else:
        serve_wsgiref(app, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
