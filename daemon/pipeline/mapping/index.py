"""``CompiledMapping``: the rules of one mapping file, indexed, and the one lookup.

Rules requiring an ``alertname`` by equality are grouped by it; for one alert
only the rules of its alertname plus the rules without such a condition are
tried, still in file order, so the cost per alert does not grow with the
number of rules when rules are keyed by alertname (docs/mapping.md,
"Performance").  :meth:`CompiledMapping.match` is pure: no I/O, and no state
but the caches of the rules it tries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from daemon.pipeline.mapping.rules import TRANSFORM_CACHE_LIMIT, Match, Rule

__all__ = ["CompiledMapping"]


class CompiledMapping:
    """A validated mapping file, indexed for matching (built by ``parse_mapping``).

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
        #: rules without an alertname equality: all an alert whose alertname no
        #: rule requires is tried against
        self._generic = generic
        #: alertname -> its own rules and the generic ones, in file order
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

    def match(self, labels: Mapping[str, str]) -> Match | None:
        """The first rule in file order whose ``key`` holds for ``labels``, and its properties.

        A property whose label is absent (or empty) and has no ``default`` is
        None, and its label is reported missing (once, in rule order).

        The pipeline's hot path, one call per transition: the conditions and
        the properties are worked out here, without a call per rule or per
        property, from what each :class:`Rule` derived for it.

        :param labels: the alert's labels
        :returns: ``(rule, properties, missing_labels)`` (:data:`Match`), or
            None when no rule matches
        """
        get = labels.get
        for rule in self._by_name.get(get("alertname", ""), self._generic):
            for label, value in rule.rest:  # the index checked alertname
                if get(label) != value:
                    break
            else:
                for condition in rule.others:
                    if not condition.test(labels):
                        break
                else:
                    break  # every condition holds: this rule (leaves the loop over rules)
        else:
            return None
        props: dict[str, str | None] = {}
        missing: list[str] | None = None
        pairs = rule.pairs
        if pairs:  # the seed's form: each property is a label as it is
            for name, label in pairs:
                value = get(label)
                if not value:
                    value = None
                    if missing is None:
                        missing = [label]
                    elif label not in missing:
                        missing.append(label)
                props[name] = value
            return rule, props, tuple(missing) if missing else ()
        for name, label, literal, chain, default, cache in rule.steps:
            if label is None:
                props[name] = literal
                continue
            value = get(label)
            if not value:
                if default is None:
                    value = None
                    if missing is None:
                        missing = [label]
                    elif label not in missing:
                        missing.append(label)
                else:
                    value = default
            elif chain:
                done = cache.get(value)
                if done is None:
                    done = value
                    for transform in chain:
                        done = transform(done)
                    if len(cache) >= TRANSFORM_CACHE_LIMIT:
                        cache.clear()
                    cache[value] = done
                value = done
            props[name] = value
        return rule, props, tuple(missing) if missing else ()


def _rule_index(rule: Rule) -> int:
    return rule.index
