"""The single-relay lock of a file database: ``flock`` on a companion file.

Kept apart from :mod:`daemon.store.sql` so the embedded store takes it
without importing SQLAlchemy.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable

from daemon import exception

__all__ = ["flock"]


def flock(database: str, me: str, where: str) -> Callable[[], None]:
    """Hold an exclusive ``flock`` on ``database + '.lock'`` (its content names the holder).

    :raises StoreInUse: another process holds it
    """
    fd = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise exception.StoreInUse(holder=holder, where=where) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, me.encode())
    return lambda: os.close(fd)


