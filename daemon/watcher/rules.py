"""The Watcher bridge's rules: which alarms start which Watcher audit template.

``load_rules(path)`` reads and validates a YAML rules file (docs/watcher.md) and
returns :class:`WatcherRule` objects in file order; every error names the
file, the line and the rule. Conditions are written in the mapping file's
matching language (docs/mapping.md) and compiled by
:func:`daemon.pipeline.mapping.compile_conditions`::

    rules:
    - name: host-load
      key: {alertname: HighHostLoad}         # alert labels, as the mapping's key
      severity: {"=~": "critical|major"}     # normalised severity (optional)
      resource_type: host                    # resource.type (optional)
      audit_template: host-load-audit        # name or UUID
      parameters: {host: "{resource.id}"}    # optional, templated
      cooldown: 600                          # seconds (optional)

Matching and rendering are pure: no I/O, no state.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Mapping
from typing import Any, Final

import yaml
from yaml.constructor import ConstructorError

from daemon.exception import MappingError, WatcherRulesError
from daemon.pipeline.mapping import compile_conditions
from daemon.pipeline.mapping.nodes import NodeReader

__all__ = [
    "MAX_FILE_SIZE",
    "ParameterError",
    "WatcherRule",
    "load_rules",
    "parse_rules",
    "placeholder_value",
]

#: Largest rules file accepted, in bytes (a larger one is refused unread).
MAX_FILE_SIZE: Final = 1024 * 1024

_RULE_KEYS: Final = ("name", "key", "severity", "resource_type", "audit_template",
                     "parameters", "cooldown")
_RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}\Z")
#: A placeholder: ``{name}``, ``{resource.id}``, or ``{labels.NAME}`` and
#: ``{resource.properties.NAME}`` where a label NAME is any text without a brace, a quote,
#: ``=`` or ``~`` (Prometheus 3 allows any UTF-8 label name: ``{labels.service.name}``).
#: Other braces are literal text.
_PLACEHOLDER = re.compile(
    r"\{((?:labels|resource\.properties)\.[^{}\"'`=~]+|[A-Za-z_][A-Za-z0-9_.-]*)\}")
_SIMPLE_FIELDS: Final = ("alarm_id", "name", "severity", "fingerprint", "resource.id",
                         "resource.type")
_PROPERTY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")


class ParameterError(ValueError):
    """A parameter's placeholder has no value for this alarm (a label or property missing)."""


@dataclasses.dataclass(frozen=True, slots=True)
class WatcherRule:
    """One rule: which alarms start an audit of which template, and how.

    :ivar index: 1-based position in the file
    :ivar line: line of the rule in the file
    :ivar name: the rule's name (unique; part of each audit's name and of the state)
    :ivar key: conditions on the alert's labels; all must hold
    :ivar severity: conditions on the normalised severity (label ``severity``)
    :ivar resource_type: conditions on ``resource.type`` (label ``resource_type``;
        an unmapped alarm has the empty value)
    :ivar audit_template: the audit template's name or UUID
    :ivar parameters: audit parameters, strings possibly holding placeholders
    :ivar cooldown: seconds per (resource, template), or None for the configured default
    """

    index: int
    line: int
    name: str
    key: tuple[Any, ...]
    severity: tuple[Any, ...] = ()
    resource_type: tuple[Any, ...] = ()
    audit_template: str = ""
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    cooldown: float | None = None

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether the alarm event ``event`` (payload schema 1.0) satisfies every condition.

        :param event: the event's payload (``labels``, ``severity``, ``resource``)
        """
        labels = event.get("labels") or {}
        if not all(condition.test(labels) for condition in self.key):
            return False
        fields = {"severity": event.get("severity") or "",
                  "resource_type": (event.get("resource") or {}).get("type") or ""}
        return all(condition.test(fields)
                   for condition in (*self.severity, *self.resource_type))

    def render_parameters(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The audit parameters for ``event``, placeholders replaced.

        :param event: the event's payload
        :raises ParameterError: a placeholder has no value (label absent or
            empty, property null, resource not resolved)
        """
        return _render(self.parameters, event)


def placeholder_value(path: str, event: Mapping[str, Any]) -> str:
    """The value of one placeholder for ``event``.

    ``labels.NAME``, ``resource.properties.NAME``, ``resource.id``,
    ``resource.type``, ``alarm_id``, ``name``, ``severity``, ``fingerprint``.

    :raises ParameterError: the value is absent, null or empty
    """
    value: Any
    if path.startswith("labels."):
        value = (event.get("labels") or {}).get(path[len("labels."):])
    elif path.startswith("resource.properties."):
        resource = event.get("resource") or {}
        value = (resource.get("properties") or {}).get(path[len("resource.properties."):])
    elif path.startswith("resource."):
        value = (event.get("resource") or {}).get(path[len("resource."):])
    else:
        value = event.get(path)
    if value is None or value == "":
        raise ParameterError(f"{{{path}}} has no value for alarm {event.get('alarm_id')}")
    return str(value)


def _render(value: Any, event: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: placeholder_value(m.group(1), event), value)
    if isinstance(value, Mapping):
        return {key: _render(item, event) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, event) for item in value]
    return value


def _check_placeholder(path: str) -> str | None:
    """None if ``path`` is a known placeholder, else what is wrong with it."""
    if path in _SIMPLE_FIELDS:
        return None
    if path.startswith("labels."):
        name = path[len("labels."):]
        return None if name == name.strip() else "blanks around the label name"
    if path.startswith("resource.properties."):
        name = path[len("resource.properties."):]
        return None if _PROPERTY_NAME.match(name) else "not a property name"
    return ("unknown placeholder (use labels.NAME, resource.properties.NAME, "
            "resource.id, resource.type, alarm_id, name, severity or fingerprint)")


# --------------------------------------------------------------------------- loading


def load_rules(path: str | os.PathLike[str], *,
               max_size: int = MAX_FILE_SIZE) -> tuple[WatcherRule, ...]:
    """Read and validate a rules file.

    :param path: the YAML file
    :param max_size: largest accepted size in bytes
    :raises WatcherRulesError: the file cannot be read or is invalid; the
        message names the file, and the line and rule where it applies
    """
    where = os.fspath(path)
    try:
        with open(where, "rb") as stream:
            info = os.fstat(stream.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise WatcherRulesError(where=where, problem="not a regular file")
            if info.st_size > max_size:
                raise WatcherRulesError(where=where, problem=(
                    f"file is {info.st_size} bytes, larger than the limit of {max_size} bytes"))
            data = stream.read(max_size + 1)
    except OSError as err:
        raise WatcherRulesError(where=where, problem=f"cannot read: {err.strerror}") from None
    return parse_rules(data, source=where)


def parse_rules(text: str | bytes, *, source: str = "<string>") -> tuple[WatcherRule, ...]:
    """Validate and compile the text of a rules file.

    :param text: the file's content (bytes must be UTF-8)
    :param source: the name used in error messages
    :raises WatcherRulesError: the text is not a valid rules file
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise WatcherRulesError(where=source, problem=(
                f"not UTF-8 text (byte at offset {err.start})")) from None
    if "\x00" in text:
        raise WatcherRulesError(where=source, problem="binary data (NUL character)")
    if not text.strip():
        raise WatcherRulesError(where=source, problem="file is empty; it must contain 'rules:'")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(p) for p in (err.context, err.problem) if p)
        raise WatcherRulesError(where=f"{source}{line}",
                                problem=f"invalid YAML: {problem}") from None
    except yaml.YAMLError as err:
        raise WatcherRulesError(where=source, problem=f"invalid YAML: {err}") from None
    try:
        return _Reader(source).rules(root)
    except MappingError as err:  # from compile_conditions: same shape, file and line
        raise WatcherRulesError(str(err)) from None


class _Reader(NodeReader):
    """Walks composed YAML nodes (which know their line) into rules.

    The mapping file's reader: the same checks (unique string keys, merge
    keys, the node budget against alias bombs) and the same ``file:line: rule
    N:`` errors, which :func:`parse_rules` turns into ``WatcherRulesError``.
    """

    def rules(self, root: yaml.Node | None) -> tuple[WatcherRule, ...]:
        if root is None:
            raise self.error(None, "file is empty; it must contain 'rules:'")
        rules_node = None
        for key, key_node, value_node in self.mapping(root, "the file"):
            if key != "rules":
                raise self.error(key_node, f"unknown key {key!r} in the file (allowed: rules)")
            rules_node = value_node
        if rules_node is None:
            raise self.error(root, "missing 'rules:' (the list of rules)")
        if not isinstance(rules_node, yaml.SequenceNode):
            raise self.error(rules_node, "'rules' must be a list of rules")
        result: list[WatcherRule] = []
        names: dict[str, int] = {}
        for index, item in enumerate(rules_node.value, start=1):
            self.rule = index
            rule = self.compile_rule(index, item)
            if rule.name in names:
                raise self.error(item, (
                    f"duplicate rule name {rule.name!r} (also rule {names[rule.name]})"))
            names[rule.name] = index
            result.append(rule)
        self.rule = None
        return tuple(result)

    def compile_rule(self, index: int, node: yaml.Node) -> WatcherRule:
        fields: dict[str, yaml.Node] = {}
        for key, key_node, value_node in self.mapping(node, "a rule"):
            if key not in _RULE_KEYS:
                raise self.error(key_node, (
                    f"unknown key {key!r} in a rule (allowed: {', '.join(_RULE_KEYS)})"))
            fields[key] = value_node
        for required in ("name", "key", "audit_template"):
            if required not in fields:
                raise self.error(node, f"missing {required!r}")
        name = self.string(fields["name"], "'name'")
        if not _RULE_NAME.match(name):
            raise self.error(fields["name"], (
                f"'name' {name!r} must be 1 to 40 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit (it is part of each audit's name)"))
        template = self.string(fields["audit_template"], "'audit_template'").strip()
        if not template:
            raise self.error(fields["audit_template"], "'audit_template' must not be empty")
        key = compile_conditions(fields["key"], source=self.source, rule=index)
        severity = resource_type = ()
        if "severity" in fields:
            severity = compile_conditions(fields["severity"], source=self.source, rule=index,
                                          label="severity")
        if "resource_type" in fields:
            resource_type = compile_conditions(fields["resource_type"], source=self.source,
                                               rule=index, label="resource_type")
        parameters: dict[str, Any] = {}
        if "parameters" in fields:
            parameters = self.compile_parameters(fields["parameters"])
        cooldown = None
        if "cooldown" in fields:
            cooldown = self.compile_cooldown(fields["cooldown"])
        return WatcherRule(index=index, line=node.start_mark.line + 1, name=name, key=key,
                           severity=severity, resource_type=resource_type,
                           audit_template=template, parameters=parameters, cooldown=cooldown)

    def compile_parameters(self, node: yaml.Node) -> dict[str, Any]:
        items = self.mapping(node, "'parameters'")
        result = {}
        for name, _, value_node in items:
            self.check_values(value_node, f"parameters.{name}")
            try:
                result[name] = self.constructor.construct_object(value_node, deep=True)
            except ConstructorError as err:
                raise self.error(value_node, f"parameters.{name}: {err.problem}") from None
        return result

    def check_values(self, node: yaml.Node, where: str) -> None:
        self.count()
        if isinstance(node, yaml.MappingNode):
            for key, _, value in self.mapping(node, where):
                self.check_values(value, f"{where}.{key}")
        elif isinstance(node, yaml.SequenceNode):
            for position, item in enumerate(node.value):
                self.check_values(item, f"{where}[{position}]")
        elif node.tag == "tag:yaml.org,2002:str":
            for match in _PLACEHOLDER.finditer(str(node.value)):
                problem = _check_placeholder(match.group(1))
                if problem:
                    raise self.error(node, f"{where}: {{{match.group(1)}}}: {problem}")
        elif node.tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                              "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"):
            raise self.error(node, f"{where}: a JSON value is needed (got tag {node.tag})")

    def compile_cooldown(self, node: yaml.Node) -> float:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (
                "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
            raise self.error(node, "'cooldown' must be a number of seconds")
        value = float(self.constructor.construct_object(node))
        if not value >= 0:
            raise self.error(node, "'cooldown' must be 0 or more seconds")
        return value

