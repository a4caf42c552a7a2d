"""The value transforms a ``resource`` property may name (``transform:`` in docs/mapping.md).

Each takes the label's value and returns the transformed text; they are
pure, so the rule model caches their results per value.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Final

__all__ = ["TRANSFORMS", "short_host", "strip_port"]


def strip_port(value: str) -> str:
    """``host:9100`` -> ``host``; ``[2001:db8::1]:9100`` -> ``2001:db8::1``.

    An IPv6 address without brackets stays whole (its colons are no port).

    :param value: a host, ``host:port`` or ``[IPv6]:port``
    """
    if value.startswith("["):
        end = value.find("]")
        if end > 0 and (end + 1 == len(value) or value[end + 1] == ":"):
            return value[1:end]
        return value
    head, sep, tail = value.rpartition(":")
    if sep and head and ":" not in head and (tail == "" or tail.isdigit()):
        return head
    return value


def short_host(value: str) -> str:
    """``compute-1.example.org`` -> ``compute-1``; IP addresses stay whole.

    :param value: a host name or an IP address
    """
    if ":" in value or "." not in value:  # IPv6, or nothing to shorten
        return value
    if value.replace(".", "").isdigit():  # cheap pre-check before the real one
        try:
            ipaddress.ip_address(value)
        except ValueError:
            pass
        else:
            return value
    return value.split(".", 1)[0]


#: Value transforms a ``resource`` property may name, applied in the order written.
TRANSFORMS: Final[Mapping[str, Callable[[str], str]]] = {
    "strip_port": strip_port,
    "short_host": short_host,
    "lower": str.lower,
    "upper": str.upper,
    "trim": str.strip,
}
