"""The mapping file: which resource an alert is about.

``load_mapping(path)`` reads and validates a YAML mapping file (docs/mapping.md)
and compiles it once into a :class:`CompiledMapping`; every error names the
file, the line and the rule.  ``CompiledMapping.match(labels)`` finds the first
rule in file order whose ``key`` matches and computes the rule's resource
properties.  Matching is pure: no I/O, no state.

The seed format (``alerts: - alert: {key, resource}``) is valid input as it
stands; the extensions (operators in ``key``, literal values, transforms and
defaults in ``resource``, ``name``, ``type`` and ``metrics`` on a rule) are
additive: a seed file means what the seed says.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import yaml
from yaml.constructor import SafeConstructor

from daemon.exception import MappingError
from daemon.pipeline.resolver import names_something, placeholders

__all__ = [
    "MAX_FILE_SIZE",
    "OPERATORS",
    "TRANSFORMS",
    "CompiledMapping",
    "Condition",
    "Match",
    "PropertySpec",
    "Rule",
    "compile_conditions",
    "load_mapping",
    "parse_mapping",
    "placeholders",
]

#: Largest mapping file accepted, in bytes (a larger one is refused unread).
MAX_FILE_SIZE: Final = 1024 * 1024
#: Most YAML nodes visited while loading (guards against alias bombs).
MAX_NODES: Final = 200_000
_MAX_MERGE_DEPTH: Final = 32

#: Operators of a ``key`` condition written as a mapping (``job: {"=~": "node.*"}``).
OPERATORS: Final = ("=", "!=", "=~", "!~", "present")

_PROPERTY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_QUERY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_RULE_KEYS: Final = ("name", "key", "type", "resource", "metrics")
_PROPERTY_KEYS: Final = ("label", "value", "transform", "default")
_TOP_KEYS: Final = ("alerts",)

_YAML_TYPE_NAMES: Final = {
    "tag:yaml.org,2002:str": "a string",
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "a timestamp",
    "tag:yaml.org,2002:binary": "binary data",
}

try:  # the C loader is much faster; line numbers come from composed nodes either way
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


# --------------------------------------------------------------------------- transforms

def _strip_port(value: str) -> str:
    """``host:9100`` -> ``host``; ``[2001:db8::1]:9100`` -> ``2001:db8::1``."""
    if value.startswith("["):
        end = value.find("]")
        if end > 0 and (end + 1 == len(value) or value[end + 1] == ":"):
            return value[1:end]
        return value
    head, sep, tail = value.rpartition(":")
    if sep and head and ":" not in head and (tail == "" or tail.isdigit()):
        return head
    return value


def _short_host(value: str) -> str:
    """``compute-1.example.org`` -> ``compute-1``; IP addresses stay whole."""
    if ":" in value or "." not in value:  # IPv6, or nothing to shorten
        return value
    if value.replace(".", "").isdigit():  # cheap pre-check before the real one
        try:
            ipaddress.ip_address(value)
        except ValueError:
            pass
        else:
            return value
    return value.split(".", 1)[0]


#: Value transforms a ``resource`` property may name, applied in the order written.
TRANSFORMS: Final[Mapping[str, Callable[[str], str]]] = {
    "strip_port": _strip_port,
    "short_host": _short_host,
    "lower": str.lower,
    "upper": str.upper,
    "trim": str.strip,
}


# --------------------------------------------------------------------------- model

#: Regex results remembered per condition.
_REGEX_CACHE_LIMIT: Final = 4096


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    """One condition of a rule's ``key`` on one label.

    An absent label has the value ``""`` (Prometheus and Alertmanager
    matchers behave the same way), so ``job: ""`` matches an absent ``job``.
    ``present: true`` means the label exists with a non-empty value.

    :ivar label: the label name
    :ivar op: ``=``, ``!=``, ``=~``, ``!~`` or ``present``
    :ivar value: the string compared, the regex source, or ``"true"``/``"false"``
    """

    label: str
    op: str
    value: str
    regex: re.Pattern[str] | None = dataclasses.field(default=None, compare=False)
    #: regex results by label value (values repeat: alert names, jobs)
    results: dict[str, bool] = dataclasses.field(default_factory=dict, compare=False,
                                                 repr=False)

    def test(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this condition.

        :param labels: the alert's labels
        """
        actual = labels.get(self.label) or ""
        op = self.op
        if op == "=":
            return actual == self.value
        if op == "!=":
            return actual != self.value
        if op == "=~" or op == "!~":
            result = self.results.get(actual)
            if result is None:
                result = (self.regex.fullmatch(actual) is None) is (  # type: ignore[union-attr]
                    op == "!~")
                if len(self.results) >= _REGEX_CACHE_LIMIT:
                    self.results.clear()
                self.results[actual] = result
            return result
        return (actual != "") is (self.value == "true")


@dataclasses.dataclass(frozen=True, slots=True)
class PropertySpec:
    """How one resource property gets its value.

    Exactly one of ``label`` (take the label's value) and ``value`` (a literal)
    is set.

    :ivar name: the property name
    :ivar label: the label whose value it takes
    :ivar value: a literal value
    :ivar transforms: names from :data:`TRANSFORMS`, applied in order
    :ivar default: used when the label is absent or empty (transforms are not applied)
    """

    name: str
    label: str | None = None
    value: str | None = None
    transforms: tuple[str, ...] = ()
    default: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One compiled rule of the mapping file.

    :ivar index: 1-based position in the file (first match wins)
    :ivar line: line of the rule in the file (1-based)
    :ivar name: the rule's ``name``, or None
    :ivar type: the resource type literal, or None
    :ivar key: the conditions; all must hold
    :ivar properties: property specs in file order
    :ivar queries: enrichment queries, name -> PromQL template with placeholders
    """

    index: int
    line: int
    name: str | None
    type: str | None
    key: tuple[Condition, ...]
    properties: tuple[PropertySpec, ...]
    queries: Mapping[str, str]
    # Derived in __post_init__, for the hot path.
    #: equality conditions with a non-empty value, as (label, value)
    equals: tuple[tuple[str, str], ...] = dataclasses.field(init=False, repr=False)
    #: every other condition
    others: tuple[Condition, ...] = dataclasses.field(init=False, repr=False)
    #: every property takes a label as it is (the seed's form)
    simple: bool = dataclasses.field(init=False, repr=False)
    #: ``equals`` without the alertname pair, which the index already checked
    rest: tuple[tuple[str, str], ...] = dataclasses.field(init=False, repr=False)
    #: (property, label) pairs when ``simple``
    pairs: tuple[tuple[str, str], ...] = dataclasses.field(init=False, repr=False)
    #: what :attr:`ref` returns
    reference: str = dataclasses.field(init=False, repr=False)
    #: ``properties`` compiled for :func:`_resource` (with a cache of transformed values)
    steps: tuple[Any, ...] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        def derive(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        # What the hot path reads is shared between rules when equal (interned
        # strings, one tuple per distinct value): a thousand rules then touch a
        # few hundred objects, not tens of thousands, and stay in the CPU cache.
        equals = _shared(tuple((_intern(c.label), _intern(c.value)) for c in self.key
                               if c.op == "=" and c.value != ""))
        simple = all(p.label is not None and not p.transforms and p.default is None
                     for p in self.properties)
        derive("type", _intern(self.type))
        derive("equals", equals)
        derive("others", tuple(c for c in self.key if not (c.op == "=" and c.value != "")))
        derive("simple", simple)
        derive("rest", _shared(tuple(pair for pair in equals if pair[0] != "alertname")))
        derive("pairs", _shared(tuple(_shared((_intern(p.name), _intern(p.label)))
                                      for p in self.properties)) if simple else ())
        derive("reference", self.name if self.name is not None else f"rule {self.index}")
        derive("steps", _steps(self.properties))

    @property
    def ref(self) -> str:
        """The rule as events name it: its ``name``, else ``rule <index>``."""
        return self.reference

    @property
    def alertname(self) -> str | None:
        """The alertname the rule requires by equality, if any (the index key)."""
        for label, value in self.equals:
            if label == "alertname":
                return value
        return None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every condition of ``key`` holds for ``labels``.

        :param labels: the alert's labels
        """
        get = labels.get
        for label, value in self.equals:
            if get(label) != value:
                return False
        for condition in self.others:
            if not condition.test(labels):
                return False
        return True

    def resource(self, labels: Mapping[str, str]) -> tuple[dict[str, str | None], list[str]]:
        """The properties for ``labels`` and the labels that were missing.

        A property whose label is absent (or empty) and has no ``default`` is
        None and its label is reported missing.

        :param labels: the alert's labels
        """
        return _resource(self.steps, labels.get)


#: Transformed values remembered per property (label values repeat: hosts, domains).
_TRANSFORM_CACHE_LIMIT: Final = 4096

_Step = tuple[str, "str | None", "str | None", tuple[Callable[[str], str], ...], "str | None",
              dict[str, str]]


#: One cache per transform chain, shared by every rule using it (the transforms are pure).
_CHAIN_CACHES: dict[tuple[str, ...], dict[str, str]] = {}


def _steps(properties: tuple[PropertySpec, ...]) -> tuple[_Step, ...]:
    return tuple((_intern(p.name), _intern(p.label), _intern(p.value),
                  tuple(TRANSFORMS[t] for t in p.transforms), _intern(p.default),
                  _CHAIN_CACHES.setdefault(p.transforms, {}))
                 for p in properties)


#: Equal hot-path tuples of rules, one object each (see ``Rule.__post_init__``).
_SHARED: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_SHARED_LIMIT: Final = 65536


def _shared(value: tuple[Any, ...]) -> tuple[Any, ...]:
    """The one tuple equal to ``value`` used by every rule (``value`` if new)."""
    if len(_SHARED) >= _SHARED_LIMIT:
        _SHARED.clear()
    return _SHARED.setdefault(value, value)


def _intern(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)


def _resource(steps: tuple[_Step, ...],
              get: Callable[[str], str | None]) -> tuple[dict[str, str | None], list[str]]:
    """Properties and missing labels; the general case of ``CompiledMapping.lookup``."""
    props: dict[str, str | None] = {}
    missing: list[str] = []
    for name, label, literal, chain, default, cache in steps:
        if label is None:
            props[name] = literal
            continue
        value = get(label)
        if not value:
            if default is None:
                value = None
                if label not in missing:
                    missing.append(label)
            else:
                value = default
        elif chain:
            done = cache.get(value)
            if done is None:
                done = value
                for transform in chain:
                    done = transform(done)
                if len(cache) >= _TRANSFORM_CACHE_LIMIT:
                    cache.clear()
                cache[value] = done
            value = done
        props[name] = value
    return props, missing


@dataclasses.dataclass(slots=True)
class Match:
    """The rule that matched an alert and the resource it gives (treat as read-only).

    Not a frozen dataclass only because it is built once per alert on the hot
    path, where a frozen ``__init__`` costs twice as much.

    :ivar rule: the matching rule
    :ivar properties: property -> value, None where a label was missing
    :ivar missing_labels: labels the rule needed that the alert lacks, in rule order
    """

    rule: Rule
    properties: dict[str, str | None]
    missing_labels: tuple[str, ...] = ()


class CompiledMapping:
    """A validated mapping file, indexed for matching.

    Rules requiring an ``alertname`` by equality are indexed by it; for one
    alert only the rules of its alertname plus the rules without such a
    condition are tried, in file order, so the cost per alert does not grow
    with the number of rules when rules are keyed by alertname.

    :param rules: the compiled rules in file order
    :param source: where they came from (file name), for messages
    :param digest: a short digest of the file's bytes, for logs
    """

    __slots__ = ("_by_name", "_generic", "digest", "rules", "source")

    def __init__(self, rules: tuple[Rule, ...], *, source: str = "<string>",
                 digest: str = "") -> None:
        self.rules = rules
        self.source = source
        self.digest = digest
        generic = tuple(rule for rule in rules if rule.alertname is None)
        grouped: dict[str, list[Rule]] = {}
        for rule in rules:
            name = rule.alertname
            if name is not None:
                grouped.setdefault(name, []).append(rule)
        self._generic = generic
        self._by_name: dict[str, tuple[Rule, ...]] = {
            name: tuple(sorted(named + list(generic), key=_rule_index))
            for name, named in grouped.items()
        }

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __repr__(self) -> str:
        return f"<CompiledMapping {self.source} rules={len(self.rules)}>"

    def candidates(self, labels: Mapping[str, str]) -> tuple[Rule, ...]:
        """The rules that may match ``labels``, in file order.

        :param labels: the alert's labels
        """
        return self._by_name.get(labels.get("alertname", ""), self._generic)

    def find(self, labels: Mapping[str, str]) -> Rule | None:
        """The first rule in file order whose ``key`` matches, or None.

        :param labels: the alert's labels
        """
        for rule in self._by_name.get(labels.get("alertname", ""), self._generic):
            if rule.matches(labels):
                return rule
        return None

    def match(self, labels: Mapping[str, str]) -> Match | None:
        """Find the first matching rule and compute its resource properties.

        :param labels: the alert's labels
        :returns: the match, or None when no rule matches
        """
        found = self.lookup(labels)
        return None if found is None else Match(*found)

    def lookup(self, labels: Mapping[str, str]) -> (
            tuple[Rule, dict[str, str | None], tuple[str, ...]] | None):
        """:meth:`match` without building a ``Match``: ``(rule, properties, missing)``.

        The hot path of the pipeline, with ``Rule.matches`` and
        ``Rule.resource`` inlined.

        :param labels: the alert's labels
        """
        get = labels.get
        for rule in self._by_name.get(get("alertname", ""), self._generic):
            for label, value in rule.rest:  # the index checked alertname
                if get(label) != value:
                    break
            else:
                others = rule.others
                if others:
                    failed = False
                    for condition in others:
                        if not condition.test(labels):
                            failed = True
                            break
                    if failed:
                        continue
                if not rule.simple:
                    props, missing = _resource(rule.steps, get)
                    return rule, props, tuple(missing)
                props = {}
                missed: list[str] | None = None
                for name, label in rule.pairs:
                    value = get(label)
                    if not value:
                        value = None
                        if missed is None:
                            missed = [label]
                        elif label not in missed:
                            missed.append(label)
                    props[name] = value
                return rule, props, tuple(missed) if missed else ()
        return None


def _rule_index(rule: Rule) -> int:
    return rule.index


# --------------------------------------------------------------------------- names

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


class _Compiler:
    """Walks composed YAML nodes (which know their line) into rules."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.constructor = SafeConstructor()
        self.visited = 0
        self.rule: int | None = None

    # -- errors

    def error(self, node: yaml.Node | None, problem: str) -> MappingError:
        where = self.source
        if node is not None:
            where = f"{where}:{node.start_mark.line + 1}"
        if self.rule is not None:
            problem = f"rule {self.rule}: {problem}"
        return MappingError(where=where, problem=problem)

    @staticmethod
    def describe(node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        return _YAML_TYPE_NAMES.get(node.tag, f"a value tagged {node.tag}")

    # -- node helpers

    def count(self) -> None:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise MappingError(where=self.source, problem=(
                f"more than {MAX_NODES} YAML nodes (alias expansion?)"))

    def mapping(self, node: yaml.Node, what: str,
                depth: int = 0) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """A mapping node's items as (key, key_node, value_node), keys checked.

        YAML merge keys (``<<: *anchor``) are expanded here, not by PyYAML, so
        every merged node is counted against :data:`MAX_NODES`.
        """
        self.count()
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping, got {self.describe(node)}")
        if depth > _MAX_MERGE_DEPTH:
            raise self.error(node, f"merge keys (<<) in {what} nested too deeply")
        own: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                subs = (value_node.value if isinstance(value_node, yaml.SequenceNode)
                        else [value_node])
                for sub in subs:
                    if not isinstance(sub, yaml.MappingNode):
                        raise self.error(sub, (
                            f"a merge key (<<) in {what} takes a mapping or a list of "
                            f"mappings, got {self.describe(sub)}"))
                    for key, sub_key, sub_value in self.mapping(sub, what, depth + 1):
                        merged.setdefault(key, (sub_key, sub_value))
                continue
            key = self.string(key_node, f"a key of {what}")
            if key in own:
                raise self.error(key_node, (
                    f"duplicate key {key!r} in {what} "
                    f"(first on line {own[key][0].start_mark.line + 1})"))
            own[key] = (key_node, value_node)
        merged.update(own)
        return [(key, k, v) for key, (k, v) in merged.items()]

    def string(self, node: yaml.Node, what: str) -> str:
        self.count()
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            hint = ""
            if isinstance(node, yaml.ScalarNode) and node.tag in (
                    "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                    "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null",
                    "tag:yaml.org,2002:timestamp"):
                hint = f" (quote it: '{node.value}')" if node.value else ""
            raise self.error(node, f"{what} must be a string, got {self.describe(node)}{hint}")
        value = self.constructor.construct_scalar(node)
        assert isinstance(value, str)
        return value

    def boolean(self, node: yaml.Node, what: str) -> bool:
        self.count()
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
            raise self.error(node, f"{what} must be true or false, got {self.describe(node)}")
        return bool(self.constructor.construct_yaml_bool(node))

    def unknown(self, key: str, key_node: yaml.Node, what: str, allowed: tuple[str, ...]) -> None:
        raise self.error(key_node, (
            f"unknown key {key!r} in {what} (allowed: {', '.join(allowed)})"))

    # -- the document

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
