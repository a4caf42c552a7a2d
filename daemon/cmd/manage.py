"""``alarm-relay-manage``: the operator's tool.

Sub-commands live in ``daemon/manage/``; each module there offers
``add_parser(subparsers)`` that sets ``func(conf) -> int`` as the default.
"""

from __future__ import annotations

import sys

from oslo_config import cfg

from daemon import conf as relay_conf
from daemon.manage import check, db, listen, mapping


def _add_command_parsers(subparsers) -> None:
    for module in (check, db, listen, mapping):
        module.add_parser(subparsers)


def main(argv: list[str] | None = None) -> int:
    command = cfg.SubCommandOpt(
        "command", title="Commands", handler=_add_command_parsers,
        help="Run 'alarm-relay-manage COMMAND --help' for details.")
    try:
        conf = relay_conf.prepare(sys.argv[1:] if argv is None else argv, cli_opts=[command])
    except cfg.Error as err:
        print(f"alarm-relay-manage: error: {err}", file=sys.stderr)
        return 2
    return conf.command.func(conf)


if __name__ == "__main__":
    sys.exit(main())
