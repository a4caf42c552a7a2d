"""``alarm-relay``: the daemon.

Validates the configuration and the mapping in the master process (a bad
value stops start-up with one line naming it), then hands over to
oslo.service, which forks the worker that runs the relay.
"""

from __future__ import annotations

import os
import sys

from oslo_config import cfg
from oslo_log import log

from daemon import conf as relay_conf
from daemon import exception, service, tls

LOG = log.getLogger(__name__)


def _on_config_mutated(conf: cfg.ConfigOpts, changed: dict) -> None:
    # Runs in the master on SIGHUP, before the worker is replaced.
    names = ", ".join(f"[{group or 'DEFAULT'}] {name}" for group, name in sorted(
        changed, key=lambda key: (key[0] or "", key[1]))) or "none"
    LOG.info("SIGHUP: configuration reloaded (changed mutable options: %s); the worker "
             "restarts with it and reloads the mapping, alarm state is kept", names)
    try:
        relay_conf.mapping_check(conf)
    except exception.AlarmRelayError as err:
        LOG.error("SIGHUP: new mapping rejected, the previous one stays in force: %s", err)
    tls.reload(conf)


def main(argv: list[str] | None = None) -> int:
    try:
        conf = relay_conf.prepare(sys.argv[1:] if argv is None else argv)
        log.setup(conf, relay_conf.PROJECT)
        relay_conf.validate(conf)
        tls.preload(conf)  # built here, inherited by the worker, kept if a reload breaks it
        service.check_store(conf, coordinated=bool(conf.coordination.backend_url))
    except (cfg.Error, exception.AlarmRelayError) as err:
        print(f"alarm-relay: error: {err}", file=sys.stderr)
        return 1
    conf.register_mutate_hook(_on_config_mutated)
    # READY=1 must mean the worker is serving: the worker sends it, not the
    # master (cotyledon would send it at once if NOTIFY_SOCKET stayed set).
    notify_socket = os.environ.pop("NOTIFY_SOCKET", None)
    LOG.info("alarm-relay %s starting (state in %s, mapping %s)",
             conf.version, conf.state_dir, conf.mapping.path)
    return service.run_forever(conf, service.RelayService(conf, notify_socket=notify_socket))


if __name__ == "__main__":
    sys.exit(main())
