"""Telling systemd how the daemon is doing (``Type=notify``): READY=1, STOPPING=1."""

from __future__ import annotations

import socket

from oslo_log import log

__all__ = ["sd_notify"]

LOG = log.getLogger(__name__)


def sd_notify(socket_path: str | None, state: str) -> None:
    """Send one sd_notify datagram (READY=1, STOPPING=1) if systemd asked for it."""
    if not socket_path:
        return
    address = "\0" + socket_path[1:] if socket_path.startswith("@") else socket_path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as err:
        LOG.warning("Could not notify systemd (%s): %s", state.split("=")[0], err)
