"""Options of the [publisher] group: the outbox and delivery to the bus.

The bus itself is configured by oslo.messaging: [DEFAULT] transport_url and
[oslo_messaging_notifications] driver/topics (our defaults: messagingv2, alarms).
"""

from oslo_config import cfg

from daemon.conf._group import register_group_opts

publisher_group = cfg.OptGroup(
    name="publisher",
    title="Event publisher",
    help="The SQLite outbox and the threads that publish its events.")

PUBLISHER_OPTS = [
    cfg.IntOpt(
        "max_outbox_events",
        default=100000,
        min=1,
        help="Most events kept unsent in the outbox. When it is full the relay "
             "stops taking new transitions (it never drops events) until the "
             "broker drains it."),
    cfg.IntOpt(
        "max_event_bytes",
        default=1024 * 1024,
        min=16 * 1024,
        help="Most bytes an event's payload may take as JSON (as the outbox stores "
             "it). A larger event, such as one of an alert with a 12 MB annotation, is "
             "cut before it is stored: the largest label and annotation values (and "
             "resource properties, generator_url, metric values) are shortened to the "
             "same size and end with '\u2026[truncated N bytes]'; names and identity "
             "fields are never cut. Counted in alarm_relay_events_truncated_total. The "
             "broker refuses a message over its own limit (RabbitMQ 4: max_message_size "
             "16 MiB), and such an event would stay in the outbox. On the wire "
             "oslo.messaging encodes the payload once more inside its envelope (quotes "
             "and backslashes escaped again), which makes it up to about 2.5 times "
             "larger at worst: keep this well below the broker's limit."),
    cfg.IntOpt(
        "pause_polls_above",
        default=1000,
        min=0,
        mutable=True,
        help="While more events than this wait in the outbox, polls of "
             "Alertmanager wait too (at most pause_polls_max seconds): what "
             "they find would only queue behind the backlog, and each poll "
             "of a large Alertmanager costs both sides CPU the publishing "
             "needs. The default is about a second of publishing at the rates "
             "docs/performance.md measures, so the poll after a large backlog "
             "starts as the backlog ends, not while its last seconds are "
             "sent. The first poll and webhook "
             "deliveries never wait. 0: polls never wait."),
    cfg.FloatOpt(
        "pause_polls_max",
        default=60.0,
        min=0,
        mutable=True,
        help="Longest time one poll waits for the outbox backlog "
             "(pause_polls_above) to shrink; it is then made anyway, so a "
             "broker outage slows polling to one poll per this many seconds "
             "but never stops it."),
    cfg.IntOpt(
        "store_ahead",
        default=8000,
        min=0,
        mutable=True,
        help="When one poll brings many new transitions (an alert storm), they "
             "are stored in chunks, and a chunk after the first waits while more "
             "than this many events wait in the outbox (at most pause_polls_max "
             "seconds for the whole poll; never while publishing fails, nor with "
             "[coordination] backend_url): storing them all at once "
             "takes the CPU the publishing needs, and they would only wait "
             "behind the backlog. Keep it above a few seconds of publishing "
             "(docs/performance.md), so publishing never runs out. Deliveries "
             "for the same cluster wait while a storm is stored, as they wait "
             "for any observation before them. 0: chunks are stored one after "
             "the other."),
    cfg.IntOpt(
        "publish_threads",
        default=8,
        min=1,
        max=64,
        help="Sends in flight to the broker at once (threads publishing in "
             "parallel, shared out over publish_processes). Events of one "
             "alarm always go out in order."),
    cfg.IntOpt(
        "publish_processes",
        default=1,
        min=0,
        max=16,
        help="Child processes that send the events, each with its own "
             "connections and its share of publish_threads. Sending costs "
             "the publishing side a few hundred microseconds of Python per "
             "event; in a child process it runs beside the worker's intake "
             "instead of taking turns with it, which is what lets an alert "
             "storm drain near the broker's rate (docs/performance.md). The "
             "worker keeps the outbox and every decision; a child that exits "
             "is started again and its unconfirmed events are sent again "
             "under the same event_id. 0: the worker's own threads send."),
    cfg.IntOpt(
        "send_retry",
        default=3,
        min=0,
        help="Reconnection attempts oslo.messaging makes within one send "
             "before the send fails and the event is retried later from the "
             "outbox (never -1, which can block forever)."),
    cfg.DictOpt(
        "severity_priority",
        default={},
        help="Optional map from normalised severity to notification priority "
             "(critical:error,major:warn). Unlisted severities use INFO, the "
             "only priority most consumers (Watcher) listen to."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    register_group_opts(conf, publisher_group, PUBLISHER_OPTS)


def list_opts() -> list:
    return [(publisher_group, PUBLISHER_OPTS)]
