"""Free loopback ports and bounded waits for the real-service test harness.

A port is picked by binding 127.0.0.1:0 and letting the kernel choose. Between closing our
probe socket and the service binding the port another process could take it; the kernel
hands out ephemeral ports round-robin, so that window is small, and this module also never
hands the same port out twice within one Python process (parallel fixtures would otherwise
be the likeliest source of collisions).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["LOOPBACK", "free_port", "free_ports", "port_open", "wait_until", "WaitTimeout"]

LOOPBACK = "127.0.0.1"

_T = TypeVar("_T")
_given: set[int] = set()
_lock = threading.Lock()


class WaitTimeout(TimeoutError):
    """A bounded wait ran out; the message says what was awaited."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now and not yet given out by us."""
    with _lock:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((LOOPBACK, 0))
                port = sock.getsockname()[1]
            if port not in _given:
                _given.add(port)
                return port
    raise RuntimeError("could not find a free loopback port")


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free loopback ports."""
    return [free_port() for _ in range(count)]


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Return True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], _T],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
    describe: Callable[[], str] | None = None,
    fatal: tuple[type[BaseException], ...] = (),
) -> _T:
    """Call ``predicate`` until it returns a truthy value, at most ``timeout`` seconds.

    Exceptions from the predicate count as "not yet" (services refuse connections while they
    start); the last one is quoted in the timeout error.

    :param describe: called on timeout to add context (e.g. a service's log tail).
    :param fatal: exception types that end the wait at once (e.g. "the process died").
    :raises WaitTimeout: when the time is up.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
        except fatal:
            raise
        except Exception as err:  # noqa: BLE001 - "not ready yet" has many shapes
            last_error = err
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout:.1f}s waiting for {what}"
            if last_error is not None:
                msg += f" (last error: {last_error!r})"
            if describe is not None:
                msg += "\n" + describe()
            raise WaitTimeout(msg)
        time.sleep(interval)
