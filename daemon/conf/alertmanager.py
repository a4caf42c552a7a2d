"""Options of the [alertmanager] group: where and how alerts are pulled.

One relay can poll several Alertmanager clusters.  By default it polls one,
configured in ``[alertmanager]`` itself and named ``cluster_name``.  With
``[alertmanager] clusters = east, west`` each named cluster gets a group of
its own, ``[alertmanager:east]``, taking the options below (except
``clusters`` and ``cluster_name``); ``urls`` must be set there, every other
option defaults to its value in ``[alertmanager]``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

from oslo_config import cfg

from daemon.conf._group import register_group_opts
from daemon.exception import ConfigError

#: A named cluster's options live in the group ``alertmanager:<name>``.
CLUSTER_GROUP_PREFIX = "alertmanager:"
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")

alertmanager_group = cfg.OptGroup(
    name="alertmanager",
    title="Alertmanager source",
    help="Alertmanager replicas polled for alerts (GET /api/v2/alerts).")

ALERTMANAGER_OPTS = [
    cfg.ListOpt(
        "urls",
        default=["http://127.0.0.1:9093"],
        help="Base URLs of the Alertmanager replicas of one cluster, path "
             "prefix included (http://am1:9093/alertmanager). An alert is "
             "resolved only when it is gone from every replica that answered."),
    cfg.StrOpt(
        "cluster_name",
        default="default",
        help="Name of the Alertmanager cluster; part of each alarm_id and of "
             "the event's source. Not used when clusters is set (each named "
             "cluster is called by its name)."),
    cfg.ListOpt(
        "clusters",
        default=[],
        help="Names of several Alertmanager clusters to poll (letters, digits, "
             "'.', '_', '-'). Each one is configured in a group of its own, "
             "[alertmanager:NAME], with urls required there and every other "
             "option of this group defaulting to its value here; alerts of "
             "each cluster are tracked apart and delivered by webhook to "
             "/v1/alerts/NAME. Empty: one cluster, configured in this group "
             "and named cluster_name."),
    cfg.FloatOpt(
        "poll_interval",
        default=15.0,
        min=0.1,
        mutable=True,
        help="Seconds between two polls of the Alertmanager replicas."),
    cfg.FloatOpt(
        "poll_jitter",
        default=0.1,
        min=0.0,
        max=0.5,
        mutable=True,
        help="Random fraction of poll_interval added to or removed from each "
             "wait, so several relays do not poll in step."),
    cfg.FloatOpt(
        "min_poll_gap",
        default=1.0,
        min=0.0,
        mutable=True,
        help="Fewest seconds between two polls when webhook deliveries ask for "
             "immediate polls."),
    cfg.FloatOpt(
        "timeout",
        default=10.0,
        min=0.1,
        help="Seconds allowed for one request to one Alertmanager replica."),
    cfg.FloatOpt(
        "max_clock_offset",
        default=5.0,
        min=0.0,
        help="Seconds by which an Alertmanager's clock (read from the Date "
             "header of each poll) may differ from the relay's before a "
             "warning is logged. Every offset is exported as "
             "alarm_relay_clock_offset_seconds and used to compare "
             "Alertmanager's times with the relay's. 0 turns the warning off."),
    cfg.ListOpt(
        "filter",
        default=[],
        help="Alertmanager label matchers (alertname=~\"Host.*\") passed as "
             "filter= on every poll."),
    cfg.StrOpt(
        "receiver",
        help="Only alerts routed to this receiver (a regular expression, as "
             "Alertmanager's API takes it)."),
    cfg.StrOpt(
        "ca_file",
        help="CA bundle used to verify the Alertmanager's TLS certificate."),
    cfg.StrOpt(
        "cert_file",
        help="Client certificate presented to Alertmanager."),
    cfg.StrOpt(
        "key_file",
        help="Private key of cert_file."),
    cfg.BoolOpt(
        "insecure",
        default=False,
        help="Skip TLS verification of Alertmanager. Never in production: a "
             "warning is logged at start-up."),
    cfg.StrOpt(
        "username",
        help="Basic auth user for Alertmanager."),
    cfg.StrOpt(
        "password",
        secret=True,
        help="Basic auth password for Alertmanager."),
    cfg.StrOpt(
        "bearer_token_file",
        help="File holding a bearer token sent to Alertmanager (re-read at "
             "every reload)."),
]


#: Options a named cluster's group takes.
_NOT_PER_CLUSTER = frozenset({"cluster_name", "clusters"})


@dataclasses.dataclass(frozen=True)
class ClusterConf:
    """One Alertmanager cluster to poll.

    :ivar name: the cluster's name (part of every alarm_id)
    :ivar group: the option group its options are read from, for messages
    :ivar options: the group's values (``conf.alertmanager`` or ``conf["alertmanager:NAME"]``)
    """

    name: str
    group: str
    options: Any


def clusters(conf: cfg.ConfigOpts) -> list[ClusterConf]:
    """The configured clusters, registering the named clusters' groups on first use.

    A named cluster's options default to the values ``[alertmanager]`` has
    now, except ``urls``, which has no default: a misspelt section name then
    fails start-up instead of polling the default URL.

    :raises ConfigError: on a bad or repeated cluster name
    """
    base = conf.alertmanager
    names = [name.strip() for name in base.clusters or () if name.strip()]
    if not names:
        return [ClusterConf(base.cluster_name, "alertmanager", base)]
    result = []
    for name in names:
        if not _CLUSTER_NAME.fullmatch(name):
            raise ConfigError(group="alertmanager", option="clusters",
                              problem=f"{name!r} is not a cluster name (letters, digits, "
                                      "'.', '_' and '-', at most 63)")
        if any(known.name == name for known in result):
            raise ConfigError(group="alertmanager", option="clusters",
                              problem=f"{name!r} is listed twice")
        group = CLUSTER_GROUP_PREFIX + name
        if group not in conf:
            conf.register_opts(_cluster_opts(), group=group)
        # Every call, not only at registration: after a reload (SIGHUP) the
        # named clusters follow the new [alertmanager] values.
        for opt in ALERTMANAGER_OPTS:
            if opt.dest not in _NOT_PER_CLUSTER and opt.dest != "urls":
                conf.set_default(opt.dest, getattr(base, opt.dest), group=group)
        result.append(ClusterConf(name, group, conf[group]))
    return result


def unlisted_cluster_groups(conf: cfg.ConfigOpts) -> list[str]:
    """``[alertmanager:NAME]`` sections of the config files not in ``clusters``."""
    listed = {CLUSTER_GROUP_PREFIX + name.strip() for name in conf.alertmanager.clusters or ()}
    return sorted(section for section in conf.list_all_sections()
                  if section.startswith(CLUSTER_GROUP_PREFIX) and section not in listed)


def _cluster_opts() -> list[cfg.Opt]:
    opts = []
    for opt in ALERTMANAGER_OPTS:
        if opt.dest in _NOT_PER_CLUSTER:
            continue
        # A copy per ConfigOpts: set_default changes the Opt object itself.
        opt = copy.copy(opt)
        if opt.dest == "urls":
            opt.default = None
        opts.append(opt)
    return opts


def register_opts(conf: cfg.ConfigOpts) -> None:
    register_group_opts(conf, alertmanager_group, ALERTMANAGER_OPTS)


def list_opts() -> list:
    return [(alertmanager_group, ALERTMANAGER_OPTS)]
