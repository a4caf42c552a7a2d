"""``alarm-relay-watcher``: the consumer that turns alarm events into Watcher EVENT audits.

Reads the same configuration file as the relay (or one of its own): the bus
from ``[DEFAULT]``, its own groups ``[watcher_bridge]`` and ``[watcher_client]``,
Keystone credentials from ``[service_credentials]``. See docs/watcher.md.
"""

from __future__ import annotations

import sys

from oslo_config import cfg
from oslo_log import log

from daemon import conf as relay_conf
from daemon import exception


def main(argv: list[str] | None = None) -> int:
    try:
        conf = relay_conf.prepare(sys.argv[1:] if argv is None else argv)
        log.setup(conf, "alarm-relay-watcher")
        relay_conf.validate_watcher_bridge(conf)
    except (cfg.Error, exception.AlarmRelayError) as err:
        print(f"alarm-relay-watcher: error: {err}", file=sys.stderr)
        return 1
    from daemon.watcher import service

    return service.run(conf)


if __name__ == "__main__":
    sys.exit(main())
