"""Registering an option group on one ConfigOpts without sharing state with others."""

from __future__ import annotations

from collections.abc import Sequence

from oslo_config import cfg


def register_group_opts(conf: cfg.ConfigOpts, group: cfg.OptGroup,
                        opts: Sequence[cfg.Opt] = ()) -> cfg.OptGroup:
    """Register a fresh copy of ``group`` (and ``opts`` in it) on ``conf``.

    oslo.config keeps registered options and overrides in the OptGroup object
    itself; registering the module-level group on several ConfigOpts (tests,
    alarm-relay-manage next to the daemon's) would make them share overrides.

    :returns: the group registered on ``conf``
    """
    fresh = cfg.OptGroup(name=group.name, title=group.title, help=group.help)
    conf.register_group(fresh)
    if opts:
        conf.register_opts(opts, group=fresh.name)
    return fresh
