"""alarm-relay-watcher as a process: rules, state, Watcher client, /metrics and the listener.

:func:`run` is everything the console script does after parsing the
configuration: it loads the rules (an invalid file stops it), opens the state
file, checks the Keystone credentials (refused credentials stop it with the
option to fix; Keystone or Watcher merely down does not), serves /metrics,
subscribes to the alarm events with a listener pool of its own (one thread:
events handled one at a time, in the order the broker delivers them) and runs
until SIGTERM or SIGINT. SIGHUP reloads the rules file (an invalid one is
logged and the current rules stay).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

from oslo_config import cfg
from oslo_log import log

from daemon.exception import WatcherError, WatcherRulesError
from daemon.systemd import sd_notify
from daemon.watcher import telemetry
from daemon.watcher.bridge import Bridge
from daemon.watcher.client import WatcherClient
from daemon.watcher.rules import load_rules
from daemon.watcher.state import open_state

__all__ = ["READY_LINE", "run"]

LOG = log.getLogger(__name__)

#: Logged once the listener is subscribed (tests and operators wait for it).
READY_LINE = "alarm-relay-watcher ready"
#: Seconds between two prunings of the state file.
_PRUNE_EVERY = 3600.0
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _fail(message: str) -> int:
    LOG.error("%s", message)
    print(f"alarm-relay-watcher: error: {message}", file=sys.stderr)
    return 1


def run(conf: cfg.ConfigOpts) -> int:
    """Run the bridge until SIGTERM/SIGINT.

    :param conf: the parsed, validated configuration
    :returns: the exit code: 0 after a clean stop, 1 when it cannot start
        (invalid rules, refused credentials, unusable state file or broker URL)
    """
    import oslo_messaging  # after daemon/__init__ chose the oslo.service backend

    options = conf.watcher_bridge
    try:
        rules = load_rules(options.rules_path)
    except WatcherRulesError as err:
        return _fail(f"rules not loaded: {err}")
    if not rules:
        LOG.warning("%s has no rules: no audit will be started", options.rules_path)
    try:
        state = open_state(conf.state_dir, options.state_file)
    except Exception as err:  # noqa: BLE001 - sqlite3.Error or OSError, reported the same
        return _fail(f"[watcher_bridge] state_file: cannot open "
                     f"{os.path.join(conf.state_dir, options.state_file)}: {err}")
    client = WatcherClient(conf)
    try:
        where = client.check()
    except WatcherError as err:
        if not err.recoverable:
            state.close()
            return _fail(f"cannot use Watcher: {err}")
        where = f"(not yet reachable: {err})"
        LOG.warning("Watcher cannot be reached yet: %s; events wait until it can", err)

    stop = threading.Event()
    reload = threading.Event()
    bridge = Bridge(rules=rules, state=state, watcher=client,
                    default_cooldown=options.default_cooldown)
    metrics_server: Any = None
    metrics_url = "disabled"
    if options.metrics_enabled:
        from prometheus_client import start_http_server

        try:
            metrics_server, _ = start_http_server(options.metrics_port,
                                                  addr=options.metrics_host,
                                                  registry=telemetry.REGISTRY)
        except OSError as err:
            state.close()
            return _fail(f"[watcher_bridge] metrics_port: cannot listen on "
                         f"{options.metrics_host}:{options.metrics_port}: {err.strerror}")
        metrics_url = (f"http://{options.metrics_host}:{metrics_server.server_port}"
                       "/metrics")
        if options.metrics_host not in _LOOPBACK:
            LOG.warning("/metrics listens on %s, not loopback: anyone who reaches it reads "
                        "the rule names and counters (no secrets)", options.metrics_host)

    from daemon.watcher.consumer import AlarmEndpoint

    topic = options.topic or (list(conf.oslo_messaging_notifications.topics) or ["alarms"])[0]
    transport = None
    listener = None
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: reload.set())
    try:
        try:
            transport = oslo_messaging.get_notification_transport(conf)
        except oslo_messaging.MessagingException as err:
            return _fail(f"cannot use [DEFAULT] transport_url: {type(err).__name__}")
        endpoint = AlarmEndpoint(bridge, stop, initial_delay=options.retry_initial_delay,
                                 max_delay=options.retry_max_delay)
        listener = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=topic)], [endpoint],
            executor="threading", pool=options.pool, allow_requeue=True)
        # One worker thread: events are handled in the order the broker delivers them.
        listener.start(override_pool_size=1)
        LOG.info("%s: %d rules from %s, topic %s on exchange %s, pool %s, Watcher at %s, "
                 "metrics %s", READY_LINE, len(rules), options.rules_path, topic,
                 conf.control_exchange, options.pool, where, metrics_url)
        sd_notify(os.environ.get("NOTIFY_SOCKET"), "READY=1")
        next_prune = time.monotonic()
        while not stop.wait(1.0):
            if reload.is_set():
                reload.clear()
                _reload(bridge, options.rules_path)
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + _PRUNE_EVERY
                removed = state.prune(time.time() - options.retention)
                if removed:
                    LOG.info("Pruned %d records older than %.0fs from the state", removed,
                             options.retention)
        sd_notify(os.environ.get("NOTIFY_SOCKET"), "STOPPING=1")
        LOG.info("alarm-relay-watcher stopping")
        return 0
    finally:
        if listener is not None:
            stop.set()
            listener.stop()
            listener.wait()
        if transport is not None:
            transport.cleanup()
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        state.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _reload(bridge: Bridge, path: str) -> None:
    try:
        rules = load_rules(path)
    except WatcherRulesError as err:
        LOG.error("SIGHUP: rules not reloaded, the current ones stay: %s", err)
        return
    bridge.replace_rules(rules)
    LOG.info("SIGHUP: %d rules reloaded from %s", len(rules), path)
