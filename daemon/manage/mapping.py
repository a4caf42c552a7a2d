"""``alarm-relay-manage mapping``: check a mapping file before the daemon loads it.

``mapping validate [FILE]`` loads and validates the file (default: ``[mapping]
path``) and exits 0, or prints every problem's file, line and rule and exits 1.

``mapping test FILE ALERTS.json [--json]`` runs the alerts of an Alertmanager
API answer (``GET /api/v2/alerts``), a webhook body, a file of webhook bodies
one a line, or alerts as POSTed to Alertmanager (labels and annotations only),
through the mapping and the transformer (no resolvers, no
network) and prints, for each alert, the rule that matched, the resource and
the event the daemon would publish.  ``--json`` prints one JSON object a line
with the keys ``rule``, ``resource`` and ``event``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from daemon.exception import InvalidAlert, MappingError

__all__ = ["add_parser", "run_test", "run_validate"]

#: Largest alerts file ``mapping test`` reads, in bytes.
MAX_ALERTS_FILE = 64 * 1024 * 1024


def add_parser(subparsers: Any) -> None:
    """Add the ``mapping`` sub-command and its ``validate`` and ``test`` actions.

    :param subparsers: the argparse sub-parsers of ``alarm-relay-manage``
    """
    parser = subparsers.add_parser(
        "mapping", help="Validate a mapping file, or test it against alerts.",
        description="Validate a mapping file (docs/mapping.md), or show what it does "
                    "with the alerts of an Alertmanager API or webhook JSON file.")
    actions = parser.add_subparsers(dest="mapping_action", title="actions")
    actions.required = True

    validate = actions.add_parser(
        "validate", help="Validate FILE; exit 0 when it is valid, 1 with the errors.")
    validate.add_argument("mapping_file", metavar="FILE", nargs="?", default=None,
                          help="the mapping file (default: [mapping] path)")
    validate.set_defaults(func=run_validate)

    test = actions.add_parser(
        "test", help="Show the rule, resource and event for each alert of ALERTS.json.")
    test.add_argument("mapping_file", metavar="FILE", help="the mapping file")
    test.add_argument("alerts_file", metavar="ALERTS.json",
                      help="GET /api/v2/alerts output, a webhook body, or webhook bodies "
                           "one a line ('-' reads standard input)")
    test.add_argument("--json", dest="json_output", action="store_true",
                      help="one JSON object per alert with the keys rule, resource, event")
    test.set_defaults(func=run_test)


def _path(conf: Any) -> str:
    return conf.command.mapping_file or conf.mapping.path


def run_validate(conf: Any, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``mapping validate``: 0 when the file is valid, else 1 with the error on stderr.

    :param conf: the parsed configuration (``conf.command`` holds the arguments)
    """
    from daemon.pipeline.mapping import load_mapping

    out = out or sys.stdout
    err = err or sys.stderr
    path = _path(conf)
    try:
        mapping = load_mapping(path)
    except MappingError as error:
        print(f"invalid: {error}", file=err)
        return 1
    indexed = sum(1 for rule in mapping.rules if rule.alertname is not None)
    print(f"{path}: valid, {len(mapping)} rules ({indexed} indexed by alertname), "
          f"sha256 {mapping.digest}", file=out)
    return 0


def run_test(conf: Any, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``mapping test``: print rule, resource and event for each alert.

    Exit 1 when the mapping is invalid, the alerts file cannot be read, or
    one of its alerts is invalid (the others are still shown).

    :param conf: the parsed configuration (``conf.command`` holds the arguments)
    """
    from daemon.lifecycle import Transition, alarm_id
    from daemon.model import parse_alert
    from daemon.pipeline.mapping import load_mapping
    from daemon.pipeline.transformer import Transformer

    out = out or sys.stdout
    err = err or sys.stderr
    args = conf.command
    try:
        mapping = load_mapping(args.mapping_file)
    except MappingError as error:
        print(f"invalid: {error}", file=err)
        return 1
    try:
        objects = list(_alert_objects(args.alerts_file))
    except (OSError, ValueError) as error:
        print(f"{args.alerts_file}: {error}", file=err)
        return 1
    try:
        transformer = Transformer.from_conf(conf, mapping)
    except ValueError as error:
        print(f"[mapping] {error}", file=err)
        return 1
    cluster = getattr(conf.alertmanager, "cluster_name", None) or "default"
    now = datetime.datetime.now(datetime.UTC)
    status = 0
    for where, obj, source_url in objects:
        try:
            alert = parse_alert(_completed(obj, now), where=where)
        except InvalidAlert as error:
            print(str(error), file=err)
            status = 1
            continue
        kind = "resolved" if alert.status == "resolved" else "firing"
        transition = Transition(
            kind=kind, alarm_id=alarm_id(cluster, alert.fingerprint, alert.starts_at),
            sequence=1 if kind == "firing" else 2, alert=alert, observed_at=now,
            cluster=cluster, source_url=source_url,
            reason="resolved" if kind == "resolved" else None)
        match = mapping.match(alert.labels)
        event = asyncio.run(transformer.transform(transition))
        rule = None
        if match is not None:
            matched, _, _ = match
            rule = {"ref": matched.ref, "index": matched.index, "line": matched.line,
                    "name": matched.name, "type": matched.type}
        resource = event.payload["resource"] if event is not None else None
        published = ({"event_type": event.event_type, "payload": event.payload}
                     if event is not None else None)
        if args.json_output:
            print(json.dumps({"rule": rule, "resource": resource, "event": published},
                             sort_keys=False), file=out)
            continue
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        print(f"{where}: {alert.name or '(no alertname)'} {{{labels}}}", file=out)
        if rule is None:
            print("  rule:     (none matched)", file=out)
        else:
            print(f"  rule:     {rule['ref']} (line {rule['line']})", file=out)
        if resource is not None:
            print(f"  resource: {json.dumps(resource)}", file=out)
        if published is None:
            print("  event:    (dropped: unmatched and [mapping] unmatched = drop)", file=out)
        else:
            print(f"  event:    {published['event_type']}", file=out)
            text = json.dumps(published["payload"], indent=2)
            print("\n".join("    " + line for line in text.splitlines()), file=out)
    return status


def _completed(obj: Any, now: datetime.datetime) -> Any:
    """A hand-written or POSTed alert (labels, maybe annotations) made a full API alert."""
    if not isinstance(obj, dict) or "status" in obj:
        return obj
    filled = {"status": {"state": "active", "silencedBy": [], "inhibitedBy": []}, **obj}
    filled.setdefault("startsAt", now.isoformat().replace("+00:00", "Z"))
    return filled


def _alert_objects(name: str) -> Iterator[tuple[str, Any, str]]:
    """``(where, alert object, source url)`` for each alert of an API or webhook file."""
    if name == "-":
        text = sys.stdin.read(MAX_ALERTS_FILE + 1)
    else:
        with open(name, encoding="utf-8") as stream:
            text = stream.read(MAX_ALERTS_FILE + 1)
    if len(text) > MAX_ALERTS_FILE:
        raise ValueError(f"larger than {MAX_ALERTS_FILE} bytes")
    try:
        documents = [(None, json.loads(text))]
    except json.JSONDecodeError:
        documents = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    documents.append((number, json.loads(line)))
                except json.JSONDecodeError as error:
                    raise ValueError(f"line {number}: not JSON ({error.msg})") from None
    for line, document in documents:
        prefix = f"{name}:{line}" if line is not None else name
        if isinstance(document, list):  # GET /api/v2/alerts
            for index, obj in enumerate(document):
                yield f"{prefix} [{index}]", obj, "file://" + name
        elif isinstance(document, dict) and isinstance(document.get("alerts"), list):
            url = document.get("externalURL") or ("file://" + name)
            for index, obj in enumerate(document["alerts"]):
                yield f"{prefix} alerts[{index}]", obj, str(url)
        elif isinstance(document, dict) and "labels" in document:  # one alert
            yield prefix, document, "file://" + name
        else:
            raise ValueError(f"{prefix}: neither an Alertmanager API answer (a list of "
                             "alerts) nor a webhook body (an object with 'alerts')")
