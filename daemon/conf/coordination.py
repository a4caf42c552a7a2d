"""Options of the [coordination] group: several relays sharing the work (issue 15).

With ``backend_url`` empty (the default) there is one relay, as before: it owns every
Alertmanager cluster and nothing is fenced. With a tooz URL, the relays of one deployment
join the tooz group ``alarm-relay``, share the ownership units (a cluster, or its
``partitions`` hash partitions) over the live members, and fence their writes with the
epoch of each unit in the shared database (docs/high-availability.md).

Takeover bound: a member that dies stops heart-beating and leaves the group within
``lease`` seconds; the survivors see it at their next check (``check_interval``) and the
new owner claims the unit, loads its state and publishes its backlog at once; its next
poll (``[alertmanager] poll_interval``) observes the cluster again. A unit therefore has
an owner again at most ``lease + check_interval`` seconds after its owner died, and the
alarms move again at most one poll later: 10 + 1 + 1 = 12 s with the defaults, within
15 s.
"""

from oslo_config import cfg

from daemon.conf._group import register_group_opts

coordination_group = cfg.OptGroup(
    name="coordination",
    title="Coordination of several relays",
    help="Several relays share the Alertmanager clusters through a tooz coordination "
         "backend (Redis, etcd, ZooKeeper) and a shared [database]. Leave backend_url "
         "empty for a single relay.")

COORDINATION_OPTS = [
    cfg.StrOpt(
        "backend_url",
        default="",
        secret=True,
        help="tooz coordination URL, e.g. redis://controller:6379 or "
             "etcd3+http://controller:2379 (the option Aodh and Ceilometer use). Empty: "
             "one relay owns everything, as without HA. When set, every relay of the "
             "deployment must use the same URL and the same shared [database] "
             "connection. The URL may hold a password: it is never logged."),
    cfg.IntOpt(
        "partitions",
        default=1,
        min=1,
        max=1024,
        help="Hash partitions of each Alertmanager cluster's alarms (by fingerprint). "
             "1: a cluster is one unit, owned by one relay. More: every relay polls the "
             "cluster and tracks and publishes only the partitions it owns, which "
             "spreads one very large cluster over the relays. Every relay must use the "
             "same value; changing it needs all relays stopped."),
    cfg.FloatOpt(
        "check_interval",
        default=1.0,
        min=0.1,
        max=60.0,
        help="Seconds between two looks at the group's members, which also heart-beat "
             "this relay's membership and rebalance the units."),
    cfg.FloatOpt(
        "lease",
        default=10.0,
        min=1.0,
        max=300.0,
        help="Seconds a relay stays a member without heart-beating (tooz's membership "
             "timeout). A dead relay's units move to the others within lease + "
             "check_interval seconds (plus one poll before its alarms move again): "
             "with the defaults at most 12 s, within the documented 15 s."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    register_group_opts(conf, coordination_group, COORDINATION_OPTS)


def list_opts() -> list:
    return [(coordination_group, COORDINATION_OPTS)]
