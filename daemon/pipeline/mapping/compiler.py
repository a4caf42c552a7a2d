"""The YAML compiler: a mapping file's text in, a :class:`CompiledMapping` out.

``load_mapping(path)`` reads a file (bounded in size), ``parse_mapping(text)``
decodes and composes its YAML, and :class:`_Compiler` walks the composed
nodes (``nodes.py``) into :class:`Rule` objects.  Every error is a
:class:`~daemon.exception.MappingError` naming the file, the line and the
rule; nothing half-compiled is ever returned (docs/mapping.md, "Validation and
errors").  :func:`compile_conditions` offers the ``key`` language to other
files that match alerts the same way (the Watcher bridge's rules).

The seed format (``alerts: - alert: {key, resource}``) is valid input as it
stands; the extensions (operators in ``key``, literal values, transforms and
defaults in ``resource``, ``name``, ``type`` and ``metrics`` on a rule) are
additive: a seed file means what the seed says.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from typing import Final

import yaml

from daemon.exception import MappingError
from daemon.pipeline.mapping.index import CompiledMapping
from daemon.pipeline.mapping.nodes import NodeReader
from daemon.pipeline.mapping.rules import OPERATORS, Condition, PropertySpec, Rule
from daemon.pipeline.mapping.transforms import TRANSFORMS
from daemon.pipeline.resolution import names_something, placeholders

__all__ = ["MAX_FILE_SIZE", "compile_conditions", "load_mapping", "parse_mapping"]

#: Largest mapping file accepted, in bytes (a larger one is refused unread).
MAX_FILE_SIZE: Final = 1024 * 1024

_PROPERTY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_QUERY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_RULE_KEYS: Final = ("name", "key", "type", "resource", "metrics")
_PROPERTY_KEYS: Final = ("label", "value", "transform", "default")
_TOP_KEYS: Final = ("alerts",)

try:  # the C loader is much faster; line numbers come from composed nodes either way
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


# --------------------------------------------------------------------------- label names

def _is_label_name(name: str) -> bool:
    """Whether ``name`` can be a label name: any non-empty text.

    Prometheus 3 and recent Alertmanager releases accept any UTF-8 label
    name (OpenTelemetry's ``service.name``), not only ``[A-Za-z_][A-Za-z0-9_]*``;
    the YAML reader already refuses what is not UTF-8 (a lone surrogate).
    """
    return bool(name)


def compile_conditions(node: yaml.Node, *, source: str, rule: int | None = None,
                       label: str | None = None) -> tuple[Condition, ...]:
    """Compile conditions written in the mapping file's matching language elsewhere.

    For other YAML files that match alerts the way the mapping file does (the
    Watcher bridge's rules, docs/watcher.md): the same operators, the same
    validation and the same error messages, naming ``source``, the line and
    the rule.

    :param node: a composed YAML node (``yaml.compose``), so errors know their line:
        with ``label`` None a ``key`` mapping (label -> string or operators, at
        least one label); with ``label`` set, the value of that one label
    :param source: the file name used in error messages
    :param rule: the 1-based rule number used in error messages, if any
    :param label: the one label (or field) the conditions test
    :returns: conditions to test with ``Condition.test(labels)``; all must hold
    :raises MappingError: naming ``source``, the line and the rule
    """
    compiler = _Compiler(source)
    compiler.rule = rule
    if label is None:
        return compiler.compile_key(node)
    return compiler.compile_label(label, node, label)


# --------------------------------------------------------------------------- loading

def load_mapping(path: str | os.PathLike[str], *, max_size: int = MAX_FILE_SIZE) -> CompiledMapping:
    """Read, validate and compile a mapping file.

    The whole file is validated before anything is returned, so a caller can
    keep its current mapping when this raises (hot reload).

    :param path: the YAML file
    :param max_size: largest accepted size in bytes; a larger file is refused
        without being read
    :raises MappingError: the file cannot be read or is invalid; the message
        names the file, and the line and rule where it applies
    """
    where = os.fspath(path)
    try:
        with open(where, "rb") as stream:
            info = os.fstat(stream.fileno())
            if not _is_regular(info.st_mode):
                raise MappingError(where=where, problem="not a regular file")
            if info.st_size > max_size:
                raise MappingError(where=where, problem=(
                    f"file is {info.st_size} bytes, larger than the limit of {max_size} bytes"))
            data = stream.read(max_size + 1)
    except OSError as err:
        raise MappingError(where=where, problem=f"cannot read: {err.strerror or err}") from err
    if len(data) > max_size:
        raise MappingError(where=where,
                           problem=f"file is larger than the limit of {max_size} bytes")
    return parse_mapping(data, source=where)


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def parse_mapping(text: str | bytes, *, source: str = "<string>") -> CompiledMapping:
    """Validate and compile the text of a mapping file.

    :param text: the file's content (bytes must be UTF-8)
    :param source: the name used in error messages
    :raises MappingError: the text is not a valid mapping file
    """
    if isinstance(text, bytes):
        raw = text
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            line = raw.count(b"\n", 0, err.start) + 1
            raise MappingError(where=f"{source}:{line}", problem=(
                f"not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start})")) from None
    else:
        raw = text.encode("utf-8", "surrogatepass")
    if "\x00" in text:
        offset = text.index("\x00")
        line = text.count("\n", 0, offset) + 1
        raise MappingError(where=f"{source}:{line}",
                           problem=f"binary data (NUL character at offset {offset})")
    if not text.strip():
        raise MappingError(where=source, problem="file is empty; it must contain 'alerts:'")
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(p) for p in (err.context, err.problem) if p)
        raise MappingError(where=f"{source}{line}", problem=f"invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        char = err.character if isinstance(err.character, int) else ord(err.character)
        raise MappingError(where=f"{source}:{line}", problem=(
            f"invalid YAML: unacceptable character #x{char:04x} at offset {err.position}: "
            f"{err.reason}")) from None
    except yaml.YAMLError as err:
        raise MappingError(where=source, problem=f"invalid YAML: {err}") from None
    except (ValueError, UnicodeError) as err:  # pragma: no cover - reader oddities
        raise MappingError(where=source, problem=f"invalid YAML: {err}") from None
    if root is None or (isinstance(root, yaml.ScalarNode)
                        and root.tag == "tag:yaml.org,2002:null" and not root.value):
        raise MappingError(where=source, problem="file is empty; it must contain 'alerts:'")
    rules = _Compiler(source).compile(root)
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return CompiledMapping(rules, source=source, digest=digest)


class _Compiler(NodeReader):
    """Walks the composed nodes of a mapping file (which know their line) into rules."""

    def compile(self, root: yaml.Node) -> tuple[Rule, ...]:
        if not isinstance(root, yaml.MappingNode):
            raise self.error(root, (
                f"the file must be a mapping with 'alerts:', got {self.describe(root)}"))
        alerts_node = None
        for key, key_node, value_node in self.mapping(root, "the file"):
            if key != "alerts":
                self.unknown(key, key_node, "the file", _TOP_KEYS)
            alerts_node = value_node
        if alerts_node is None:
            raise self.error(root, "missing 'alerts:' (the list of rules)")
        if not isinstance(alerts_node, yaml.SequenceNode):
            raise self.error(alerts_node, (
                f"'alerts' must be a list of rules, got {self.describe(alerts_node)}"))
        rules: list[Rule] = []
        names: dict[str, int] = {}
        for index, item in enumerate(alerts_node.value, start=1):
            self.rule = index
            self.count()
            rule = self.compile_rule(index, item)
            if rule.name is not None:
                if rule.name in names:
                    raise self.error(item, (
                        f"duplicate rule name {rule.name!r} (also rule {names[rule.name]})"))
                names[rule.name] = index
            rules.append(rule)
        self.rule = None
        return tuple(rules)

    def compile_rule(self, index: int, item: yaml.Node) -> Rule:
        node = item
        items = self.mapping(node, "a rule")
        if any(key == "alert" for key, _, _ in items):
            # The seed's form: {alert: {key, resource}}.
            for key, key_node, _ in items:
                if key != "alert":
                    raise self.error(key_node, (
                        f"unknown key {key!r} next to 'alert' (put it inside 'alert:')"))
            node = items[0][2]
            items = self.mapping(node, "'alert'")
        fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, key_node, value_node in items:
            if key not in _RULE_KEYS:
                self.unknown(key, key_node, "a rule", _RULE_KEYS)
            fields[key] = (key_node, value_node)
        if "key" not in fields:
            raise self.error(node, "missing 'key' (the labels the rule matches)")
        if "resource" not in fields:
            raise self.error(node, "missing 'resource' (the properties it maps)")

        name = None
        if "name" in fields:
            name = self.string(fields["name"][1], "'name'")
            if not name.strip():
                raise self.error(fields["name"][1], "'name' must not be empty")
        rtype = None
        if "type" in fields:
            rtype = self.string(fields["type"][1], "'type'")
            if not rtype.strip():
                raise self.error(fields["type"][1], "'type' must not be empty")
        key = self.compile_key(fields["key"][1])
        properties = self.compile_resource(fields["resource"][1])
        queries: dict[str, str] = {}
        if "metrics" in fields:
            queries = self.compile_metrics(fields["metrics"][1])

        return Rule(index=index, line=item.start_mark.line + 1, name=name, type=rtype,
                    key=key, properties=properties, queries=queries)

    def compile_key(self, node: yaml.Node) -> tuple[Condition, ...]:
        items = self.mapping(node, "'key'")
        if not items:
            raise self.error(node, (
                "'key' must name at least one label (a rule matching every alert is "
                "written explicitly, e.g. alertname: {present: true})"))
        conditions: list[Condition] = []
        for label, key_node, value_node in items:
            if not _is_label_name(label):
                raise self.error(key_node, f"key: {label!r} is not a valid label name")
            conditions.extend(self.compile_label(label, value_node, f"key.{label}"))
        return tuple(conditions)

    def compile_label(self, label: str, value_node: yaml.Node,
                      where: str) -> tuple[Condition, ...]:
        """The conditions on one label: a string (equality) or a mapping of operators."""
        if isinstance(value_node, yaml.ScalarNode):
            value = self.string(value_node, where)
            return (Condition(label, "=", value),)
        if not isinstance(value_node, yaml.MappingNode):
            raise self.error(value_node, (
                f"{where} must be a string or a mapping of operators "
                f"({', '.join(OPERATORS)}), got {self.describe(value_node)}"))
        ops = self.mapping(value_node, where)
        if not ops:
            raise self.error(value_node, f"{where}: no operator given")
        conditions: list[Condition] = []
        for op, op_node, operand in ops:
            if op not in OPERATORS:
                raise self.error(op_node, (
                    f"{where}: unknown operator {op!r} "
                    f"(allowed: {', '.join(OPERATORS)})"))
            if op == "present":
                present = self.boolean(operand, f"{where}.present")
                conditions.append(Condition(label, "present", "true" if present else "false"))
                continue
            value = self.string(operand, f"{where}.{op}")
            regex = None
            if op in ("=~", "!~"):
                try:
                    regex = re.compile(value)
                except re.error as err:
                    raise self.error(operand, (
                        f"{where}.{op}: invalid regular expression {value!r}: {err}"
                    )) from None
            conditions.append(Condition(label, op, value, regex))
        return tuple(conditions)

    def compile_resource(self, node: yaml.Node) -> tuple[PropertySpec, ...]:
        items = self.mapping(node, "'resource'")
        if not items:
            raise self.error(node, "'resource' must map at least one property")
        specs: list[PropertySpec] = []
        for name, key_node, value_node in items:
            if not _PROPERTY_NAME.match(name):
                raise self.error(key_node, f"resource: {name!r} is not a valid property name")
            where = f"resource.{name}"
            if (isinstance(value_node, yaml.ScalarNode)
                    and value_node.tag == "tag:yaml.org,2002:str"):
                label = self.string(value_node, where)
                if not _is_label_name(label):
                    raise self.error(value_node, (
                        f"{where}: {label!r} is not a valid label name "
                        f"(for a literal write {{value: {label!r}}})"))
                specs.append(PropertySpec(name, label=label))
                continue
            if not isinstance(value_node, yaml.MappingNode):
                raise self.error(value_node, (
                    f"{where}: resource value must be a label name or a literal "
                    f"({{value: ...}}), got {self.describe(value_node)}"))
            fields: dict[str, yaml.Node] = {}
            for key, sub_key_node, sub_value in self.mapping(value_node, where):
                if key not in _PROPERTY_KEYS:
                    self.unknown(key, sub_key_node, where, _PROPERTY_KEYS)
                fields[key] = sub_value
            if ("label" in fields) == ("value" in fields):
                raise self.error(value_node, f"{where}: give exactly one of 'label' and 'value'")
            if "value" in fields:
                extra = sorted(set(fields) - {"value"})
                if extra:
                    raise self.error(value_node, (
                        f"{where}: a literal value takes no {' or '.join(map(repr, extra))}"))
                literal = self.string(fields["value"], f"{where}.value")
                specs.append(PropertySpec(name, value=literal))
                continue
            label = self.string(fields["label"], f"{where}.label")
            if not _is_label_name(label):
                raise self.error(fields["label"],
                                 f"{where}.label: {label!r} is not a valid label name")
            transforms: tuple[str, ...] = ()
            if "transform" in fields:
                transforms = self.compile_transforms(fields["transform"], f"{where}.transform")
            default = None
            if "default" in fields:
                default = self.string(fields["default"], f"{where}.default")
            specs.append(PropertySpec(name, label=label, transforms=transforms, default=default))
        return tuple(specs)

    def compile_transforms(self, node: yaml.Node, where: str) -> tuple[str, ...]:
        nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if isinstance(node, yaml.SequenceNode) and not nodes:
            raise self.error(node, f"{where}: empty list")
        names = []
        for item in nodes:
            name = self.string(item, where)
            if name not in TRANSFORMS:
                raise self.error(item, (
                    f"{where}: unknown transform {name!r} (allowed: {', '.join(TRANSFORMS)})"))
            names.append(name)
        return tuple(names)

    def compile_metrics(self, node: yaml.Node) -> dict[str, str]:
        queries: dict[str, str] = {}
        for name, key_node, value_node in self.mapping(node, "'metrics'"):
            if not _QUERY_NAME.match(name):
                raise self.error(key_node, f"metrics: {name!r} is not a valid metric name")
            template = self.string(value_node, f"metrics.{name}")
            if not template.strip():
                raise self.error(value_node, f"metrics.{name}: empty query")
            if "{{" in template:
                raise self.error(value_node, (
                    f"metrics.{name}: '{{{{' in the query; placeholders are written "
                    "{label_name}, not as Go templates (see docs/mapping.md)"))
            for placeholder in placeholders(template):
                if not names_something(placeholder):
                    raise self.error(value_node, (
                        f"metrics.{name}: placeholder {{{placeholder}}} names nothing; "
                        "a placeholder is a label or property name in braces, with no "
                        "blanks around it ({instance}, {service.name}); an empty PromQL "
                        "selector (up{}) is the metric alone (up)"))
            queries[name] = template
        return queries
