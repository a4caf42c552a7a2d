"""Entry points of oslo-config-generator: every option alarm-relay registers."""

from __future__ import annotations

from daemon import conf as relay_conf

__all__ = ["list_opts", "set_defaults"]


def list_opts() -> list:
    """Return ``[(group, [opts])]`` for every group, in GROUP_MODULES order."""
    result = []
    for module in relay_conf.GROUP_MODULES:
        result.extend(module.list_opts())
    return result


def set_defaults() -> None:
    relay_conf.set_defaults()
