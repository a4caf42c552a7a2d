"""Write docs/configuration.md from the registered options (the reference operators read).

Run by ``make genconfig``; tests/unit/conf/test_config_doc.py fails when the
document and the code disagree.
"""

from __future__ import annotations

import pathlib
import sys

import daemon  # noqa: F401 - selects the oslo.service backend first
from daemon.conf import opts

ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "configuration.md"

HEADER = """# Configuration reference

Generated from the code by `make genconfig` (`tools/gen_config_doc.py`); do not edit by hand.
The file is oslo.config INI, passed as
`alarm-relay --config-file /etc/alarm-relay/alarm-relay.conf`.
`etc/alarm-relay/alarm-relay.conf.sample` is the same reference as a commented config file,
including the options of oslo.messaging (`transport_url`, `[oslo_messaging_notifications]`,
`[oslo_messaging_rabbit]`), oslo.log and oslo.service (`graceful_shutdown_timeout`).

Options marked *mutable* take effect on `systemctl reload alarm-relay` (SIGHUP); the worker is
replaced on every reload, so the others take effect too, except where noted.
Secret options are never logged.

Defaults alarm-relay sets for library options: `[oslo_messaging_notifications] driver =
messagingv2`, `topics = alarms`; `[oslo_messaging_rabbit] amqp_durable_queues = true`.
"""


def _default(opt) -> str:
    default = opt.sample_default if opt.sample_default is not None else opt.default
    if default is None or default == "":
        return "(none)"
    if isinstance(default, list):
        return ", ".join(str(v) for v in default) or "(empty list)"
    if isinstance(default, dict):
        return ", ".join(f"{k}:{v}" for k, v in default.items())
    return str(default)


def render() -> str:
    out = [HEADER]
    for group, group_opts in opts.list_opts():
        name = group.name if group is not None else "DEFAULT"
        out.append(f"\n## [{name}]\n")
        if group is not None and group.help:
            out.append(f"{group.help}\n")
        out.append("\n| option | type | default | description |\n|---|---|---|---|")
        for opt in sorted(group_opts, key=lambda o: o.name):
            flags = []
            if getattr(opt, "mutable", False):
                flags.append("mutable")
            if opt.secret:
                flags.append("secret")
            choices = getattr(opt.type, "choices", None)
            help_text = " ".join((opt.help or "").split()).replace("|", "\\|")
            if choices:
                help_text += " Choices: " + ", ".join(f"`{c}`" for c in choices if c is not None)
            if flags:
                help_text += f" *({', '.join(flags)})*"
            type_name = type(opt).__name__.replace("Opt", "").lower() or "str"
            out.append(f"| `{opt.name}` | {type_name} | `{_default(opt)}` | {help_text} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    TARGET.write_text(render())
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
