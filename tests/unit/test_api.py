"""daemon/api.py: /readyz gives its checks and, with several relays, the coordination."""

from __future__ import annotations

import aiohttp

from daemon import api


async def _get(app, path: str) -> tuple[int, dict]:
    runner, port = await api.serve(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{port}{path}") as response:
            return response.status, await response.json()
    finally:
        await runner.cleanup()


async def test_readyz_shows_the_coordination_of_a_standby():
    coordination = {"member": "ctl-2-4311", "members": ["ctl-1-4242", "ctl-2-4311"],
                    "owned": {}, "backend_ok": True}
    app = api.build_app(max_body_size=1024, readiness=lambda: {"outbox_writable": True},
                        details=lambda: {"coordination": coordination})
    status, body = await _get(app, "/readyz")
    assert status == 200  # a standby owns nothing and is ready: it takes webhooks
    assert body == {"ready": True, "checks": {"outbox_writable": True},
                    "coordination": coordination}


async def test_readyz_without_details_is_unchanged():
    app = api.build_app(max_body_size=1024, readiness=lambda: {"outbox_writable": False})
    status, body = await _get(app, "/readyz")
    assert status == 503 and body == {"ready": False, "checks": {"outbox_writable": False}}
