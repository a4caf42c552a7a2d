"""PromQL text built from untrusted label values.

Alert labels come from exporters and alert rules, so a value may hold a double
quote, a backslash or a newline.  Everything that puts a value into PromQL
goes through :func:`escape_label_value`: a value can then never end the
string literal it is placed in and change the query.

Enrichment templates (a rule's ``metrics:`` in the mapping file) use
``{name}`` placeholders, where ``name`` is an alert label or a resource
property (``node_load1{instance="{instance}"}``).  PromQL's own braces never
clash: a selector always holds a matcher (``=``, ``!=``, ``=~``, ``!~``), a
placeholder only a name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from daemon.exception import MetricsError

__all__ = [
    "escape_label_value",
    "placeholders",
    "render",
    "selector",
]

_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n"}


def escape_label_value(value: str) -> str:
    """Escape ``value`` for a double-quoted PromQL string literal.

    Backslash, double quote and newline are escaped, as Prometheus's own
    label value formatting does.

    :param value: any string
    :returns: the escaped text, without the surrounding quotes
    """
    return "".join(_ESCAPES.get(char, char) for char in value)


def selector(metric: str | None = None, **matchers: str | tuple[str, str]) -> str:
    """Build a series selector such as ``up{instance="a:9100",fqdn!=""}``.

    Each matcher is ``label=value`` (equality) or ``label=(op, value)`` with op
    one of ``=``, ``!=``, ``=~``, ``!~``.  Values are escaped.

    :param metric: metric name, or None for a bare ``{...}`` selector
    :param matchers: label name to value or (operator, value)
    :raises ValueError: for an invalid metric or label name, an unknown
        operator, or an empty selector
    """
    if metric is not None and not re.match(r"^[A-Za-z_:][A-Za-z0-9_:]*$", metric):
        raise ValueError(f"invalid metric name {metric!r}")
    parts = []
    for name, matcher in matchers.items():
        if not _LABEL_NAME.match(name):
            raise ValueError(f"invalid label name {name!r}")
        op, value = ("=", matcher) if isinstance(matcher, str) else matcher
        if op not in ("=", "!=", "=~", "!~"):
            raise ValueError(f"invalid matcher operator {op!r}")
        parts.append(f'{name}{op}"{escape_label_value(value)}"')
    if metric is None and not parts:
        raise ValueError("a selector needs a metric name or a matcher")
    return f"{metric or ''}{{{','.join(parts)}}}"


def placeholders(template: str) -> list[str]:
    """Return the placeholder names of ``template``, in order of appearance."""
    return _PLACEHOLDER.findall(template)


def render(template: str, values: Mapping[str, str | None], *, name: str = "query") -> str:
    """Substitute each ``{label}`` of ``template`` by its escaped value.

    The template is expected to put placeholders inside double-quoted
    strings (``{instance="{instance}"}``); the value is escaped for that.

    :param template: PromQL with ``{name}`` placeholders
    :param values: names to values (alert labels, resource properties)
    :param name: the query's name, for the error message
    :raises MetricsError: when a placeholder has no value
    """
    missing = [key for key in placeholders(template) if values.get(key) is None]
    if missing:
        raise MetricsError(
            backend="promql",
            problem=(f"enrichment query {name!r} needs "
                     f"{', '.join(sorted(set(missing)))}, which the alert does not "
                     "carry"))
    return _PLACEHOLDER.sub(lambda m: escape_label_value(str(values[m.group(1)])), template)
