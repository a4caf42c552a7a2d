"""The rule model: conditions on labels, property specs, compiled rules, and a match.

A :class:`Rule` is what the compiler makes of one entry of ``alerts:``
(docs/mapping.md): its ``key`` as :class:`Condition` objects, its
``resource`` as :class:`PropertySpec` objects, its ``metrics`` as query
templates.  A :data:`Match` is a rule applied to one alert's labels, as
``CompiledMapping.match`` (``index.py``) returns it.

What that lookup reads is derived here, once per rule (``Rule.rest``,
``others``, ``pairs``, ``steps``), and shared between rules (interned strings,
one tuple per distinct value): a thousand rules then touch a few hundred
objects, not tens of thousands, and stay in the CPU cache.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final

from daemon.pipeline.mapping.transforms import TRANSFORMS

__all__ = ["OPERATORS", "Condition", "Match", "PropertySpec", "Rule"]

#: Operators of a ``key`` condition written as a mapping (``job: {"=~": "node.*"}``).
OPERATORS: Final = ("=", "!=", "=~", "!~", "present")

#: Regex results remembered per condition.
_REGEX_CACHE_LIMIT: Final = 4096
#: Transformed values remembered per transform chain (label values repeat: hosts,
#: domains); the lookup empties a cache that reaches it.
TRANSFORM_CACHE_LIMIT: Final = 4096


@dataclasses.dataclass(frozen=True, slots=True)
class Condition:
    """One condition of a rule's ``key`` on one label.

    An absent label has the value ``""`` (Prometheus and Alertmanager
    matchers behave the same way), so ``job: ""`` matches an absent ``job``.
    ``present: true`` means the label exists with a non-empty value.

    :ivar label: the label name
    :ivar op: one of :data:`OPERATORS`
    :ivar value: the string compared, the regex source, or ``"true"``/``"false"``
    :ivar regex: the compiled ``value`` of ``=~`` and ``!~``, else None
    :ivar results: regex results by label value (values repeat: alert names,
        jobs); no part of the condition's identity
    """

    label: str
    op: str
    value: str
    regex: re.Pattern[str] | None = dataclasses.field(default=None, compare=False)
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


#: One compiled property: (name, label, literal, transform functions, default, cache).
_Step = tuple[str, "str | None", "str | None", tuple[Callable[[str], str], ...], "str | None",
              dict[str, str]]


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
    :ivar ref: the rule as events and logs name it: its ``name``, else ``rule <index>``
    """

    index: int
    line: int
    name: str | None
    type: str | None
    key: tuple[Condition, ...]
    properties: tuple[PropertySpec, ...]
    queries: Mapping[str, str]
    ref: str = dataclasses.field(init=False)
    # Derived in __post_init__ for the lookup (``CompiledMapping.match``).
    #: equality conditions with a non-empty value, as (label, value)
    equals: tuple[tuple[str, str], ...] = dataclasses.field(init=False, repr=False)
    #: ``equals`` without the alertname pair, which the index already checked
    rest: tuple[tuple[str, str], ...] = dataclasses.field(init=False, repr=False)
    #: every condition that is not in ``equals``
    others: tuple[Condition, ...] = dataclasses.field(init=False, repr=False)
    #: (property, label) pairs when every property takes a label as it is (the
    #: seed's form, the fast case), else empty
    pairs: tuple[tuple[str, str], ...] = dataclasses.field(init=False, repr=False)
    #: ``properties`` compiled: (name, label, literal, transform functions,
    #: default, cache of transformed values shared by the rules with that chain)
    steps: tuple[_Step, ...] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        def derive(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        equals = _shared(tuple((_intern(c.label), _intern(c.value)) for c in self.key
                               if c.op == "=" and c.value != ""))
        simple = all(p.label is not None and not p.transforms and p.default is None
                     for p in self.properties)
        derive("type", _intern(self.type))
        derive("ref", self.name if self.name is not None else f"rule {self.index}")
        derive("equals", equals)
        derive("rest", _shared(tuple(pair for pair in equals if pair[0] != "alertname")))
        derive("others", tuple(c for c in self.key if not (c.op == "=" and c.value != "")))
        derive("pairs", _shared(tuple(_shared((_intern(p.name), _intern(p.label)))
                                      for p in self.properties)) if simple else ())
        derive("steps", _steps(self.properties))

    @property
    def alertname(self) -> str | None:
        """The alertname the rule requires by equality, if any (the index key)."""
        for label, value in self.equals:
            if label == "alertname":
                return value
        return None


#: A rule that matched an alert, with its properties: ``(rule, properties,
#: missing_labels)``, where ``properties`` maps each property to its value (None
#: where a label was missing) and ``missing_labels`` lists the labels the rule
#: needed that the alert lacks, in rule order.  A plain tuple, not a named one:
#: one is made per alert on the hot path, where a tuple subclass costs about three
#: times as much to make.  Unpack it; treat it as read-only.
Match = tuple[Rule, dict[str, str | None], tuple[str, ...]]

#: One cache per transform chain, shared by every rule using it (the transforms are pure).
_CHAIN_CACHES: dict[tuple[str, ...], dict[str, str]] = {}


def _steps(properties: tuple[PropertySpec, ...]) -> tuple[_Step, ...]:
    return tuple((_intern(p.name), _intern(p.label), _intern(p.value),
                  tuple(TRANSFORMS[t] for t in p.transforms), _intern(p.default),
                  _CHAIN_CACHES.setdefault(p.transforms, {}))
                 for p in properties)


#: Equal hot-path tuples of rules, one object each (see the module docstring).
_SHARED: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_SHARED_LIMIT: Final = 65536


def _shared(value: tuple[Any, ...]) -> tuple[Any, ...]:
    """The one tuple equal to ``value`` used by every rule (``value`` if new)."""
    if len(_SHARED) >= _SHARED_LIMIT:
        _SHARED.clear()
    return _SHARED.setdefault(value, value)


def _intern(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)
