"""Membership over tooz with a real Redis: join, see each other, leave, lapse, outage."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from daemon import exception
from daemon.coordination import Coordinator
from tools.harness.redis_server import RedisServer

pytestmark = pytest.mark.timeout(60)


async def _until(predicate, within: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not within {within}s")


async def test_members_join_leave_and_lapse(coordination_url: str, redis_namespace):
    a = Coordinator(coordination_url, "host-a-1", lease=2.0)
    b = Coordinator(coordination_url, "host-b-2", lease=2.0)
    c = Coordinator(coordination_url, "host-c-3", lease=2.0)
    for coord in (a, b, c):
        await coord.start()
    try:
        for coord in (a, b, c):
            await coord.refresh()
        assert await a.refresh() == {"host-a-1", "host-b-2", "host-c-3"}
        # Only this test's namespace holds the keys.
        assert redis_namespace.keys()

        await b.stop()  # a clean leave is seen at once
        assert await a.refresh() == {"host-a-1", "host-c-3"}

        # c stops heart-beating (a SIGKILL, a pause): it is gone once its lease lapses.
        started = time.monotonic()

        async def c_gone() -> bool:
            return "host-c-3" not in await a.refresh()

        await _until(c_gone, 10, "the silent member leaving")
        lapse = time.monotonic() - started
        assert 1.0 <= lapse <= 2.0 + 1.5, lapse
        # c comes back (SIGCONT): its next refresh joins it again.
        assert "host-c-3" in await c.refresh()
        assert await a.refresh() == {"host-a-1", "host-c-3"}
    finally:
        for coord in (a, c):
            await coord.stop()


async def test_backend_outage_raises_and_rejoins(redis_server: RedisServer):
    url = redis_server.tooz_url(namespace=f"relaytest-{os.getpid()}")
    a = Coordinator(url, "host-a-1", lease=3.0)
    b = Coordinator(url, "host-b-2", lease=3.0)
    await a.start()
    await b.start()
    try:
        await b.refresh()
        assert await a.refresh() == {"host-a-1", "host-b-2"}
        redis_server.stop()
        with pytest.raises(exception.CoordinationError):
            await a.refresh()
        assert not a.healthy
        assert a.members == {"host-a-1", "host-b-2"}  # the last answer is kept
        redis_server.start()  # empty: the group and its members are gone

        async def both_back() -> bool:
            try:
                await b.refresh()
                return await a.refresh() == {"host-a-1", "host-b-2"}
            except exception.CoordinationError:
                return False

        await _until(both_back, 20, "both members back after the restart")
        assert a.healthy
    finally:
        await a.stop()
        await b.stop()


async def test_backend_down_at_start_joins_later(redis_server: RedisServer):
    url = redis_server.tooz_url()
    redis_server.stop()
    a = Coordinator(url, "host-a-1", lease=3.0)
    await a.start()
    try:
        assert not a.healthy
        redis_server.start()

        async def joined() -> bool:
            try:
                return await a.refresh() == {"host-a-1"}
            except exception.CoordinationError:
                return False

        await _until(joined, 20, "joining once the backend answers")
    finally:
        await a.stop()


async def test_a_long_ownership_check_does_not_lapse_the_membership(
        coordination_url: str, tmp_path):
    """A storm's observation can hold a check for seconds; the heartbeat must go on."""
    import concurrent.futures

    from daemon.ownership import Ownership
    from daemon.store import SQLiteStore

    db = concurrent.futures.ThreadPoolExecutor(1)
    store = SQLiteStore(str(tmp_path / "state.sqlite"), max_events=100)
    store.open()
    a = Coordinator(coordination_url, "host-a-1", lease=1.5)
    watcher = Coordinator(coordination_url, "host-w-2", lease=30.0)
    async def nothing(*args) -> None:
        return None

    ownership = Ownership(a, store, db_executor=db, units=["east"], check_interval=0.2,
                          on_take=nothing, on_release=nothing)
    await watcher.start()
    await ownership.start()
    running = asyncio.ensure_future(ownership.run())
    try:
        async with ownership._lock:  # a check that takes 4 s (more than two leases)
            for _ in range(8):
                await asyncio.sleep(0.5)
                assert "host-a-1" in await watcher.refresh(), "a live relay lost its membership"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await ownership.stop()
        await watcher.stop()
        store.close()
        db.shutdown(wait=True)
