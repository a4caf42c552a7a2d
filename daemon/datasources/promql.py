"""PromQL text built from untrusted label values.

Alert labels come from exporters and alert rules, so a value may hold a double
quote, a backslash or a newline.  Everything that puts a value into PromQL
goes through :func:`escape_label_value`: a value can then never end the
string literal it is placed in and change the query.

Enrichment templates (a rule's ``metrics:`` in the mapping file) use
``{name}`` placeholders, where ``name`` is an alert label or a resource
property (``node_load1{instance="{instance}"}``).  PromQL's own braces never
clash: a selector always holds a matcher (``=``, ``!=``, ``=~``, ``!~``) or a
quoted name, a placeholder only a name (the grammar is
``daemon.pipeline.resolution.PLACEHOLDER``).

Label names are any UTF-8 text since Prometheus 3 (OpenTelemetry's
``service.name``).  A selector built here writes a name outside the classic
charset ``[A-Za-z_][A-Za-z0-9_]*`` quoted, as Prometheus 3 prints it:
``{"service.name"="checkout"}``; a metric name outside its charset goes
inside the braces, quoted, first (``{"http.server.duration",job="a"}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from daemon.exception import DatasourceError
from daemon.pipeline.resolution import PLACEHOLDER, names_something, placeholders

__all__ = [
    "escape_label_value",
    "placeholders",
    "quote_name",
    "render",
    "selector",
]

_LEGACY_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LEGACY_METRIC_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*\Z")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n"}


def escape_label_value(value: str) -> str:
    """Escape ``value`` for a double-quoted PromQL string literal.

    Backslash, double quote and newline are escaped, as Prometheus's own
    label value formatting does.

    :param value: any string
    :returns: the escaped text, without the surrounding quotes
    """
    return "".join(_ESCAPES.get(char, char) for char in value)


def quote_name(name: str) -> str:
    """A label name as PromQL text: as it is in the classic charset, else quoted.

    ``instance`` stays ``instance``; ``service.name`` becomes
    ``"service.name"`` (escaped like a label value), the form Prometheus 3
    reads and prints.

    :param name: any non-empty label name
    :raises ValueError: for an empty name
    """
    if _LEGACY_LABEL_NAME.match(name):
        return name
    if not name:
        raise ValueError("a label name must not be empty")
    return f'"{escape_label_value(name)}"'


def selector(metric: str | None = None, **matchers: str | tuple[str, str]) -> str:
    """Build a series selector such as ``up{instance="a:9100",fqdn!=""}``.

    Each matcher is ``label=value`` (equality) or ``label=(op, value)`` with op
    one of ``=``, ``!=``, ``=~``, ``!~``.  Values are escaped; names outside
    the classic charset are quoted (:func:`quote_name`), and so is such a
    metric name, inside the braces: ``{"http.requests",job="a"}``.

    :param metric: metric name, or None for a bare ``{...}`` selector
    :param matchers: label name to value or (operator, value)
    :raises ValueError: for an empty metric or label name, an unknown
        operator, or an empty selector
    """
    parts = []
    if metric is not None and not _LEGACY_METRIC_NAME.match(metric):
        if not metric:
            raise ValueError("a metric name must not be empty")
        parts.append(f'"{escape_label_value(metric)}"')
        metric = None
    for name, matcher in matchers.items():
        op, value = ("=", matcher) if isinstance(matcher, str) else matcher
        if op not in ("=", "!=", "=~", "!~"):
            raise ValueError(f"invalid matcher operator {op!r}")
        parts.append(f'{quote_name(name)}{op}"{escape_label_value(value)}"')
    if metric is None and not parts:
        raise ValueError("a selector needs a metric name or a matcher")
    return f"{metric or ''}{{{','.join(parts)}}}"


def render(template: str, values: Mapping[str, str | None], *, name: str = "query") -> str:
    """Substitute each ``{label}`` of ``template`` by its escaped value.

    The template is expected to put placeholders inside double-quoted
    strings (``{instance="{instance}"}``); the value is escaped for that.

    :param template: PromQL with ``{name}`` placeholders (any label or
        property name, ``{service.name}`` included)
    :param values: names to values (alert labels, resource properties)
    :param name: the query's name, for the error message
    :raises DatasourceError: when a placeholder has no value
    """
    missing = [key for key in placeholders(template)
               if not names_something(key) or values.get(key) is None]
    if missing:
        raise DatasourceError(
            backend="promql",
            problem=(f"enrichment query {name!r} needs "
                     f"{', '.join(sorted(set(missing)))}, which the alert does not "
                     "carry"))
    return PLACEHOLDER.sub(lambda m: escape_label_value(str(values[m.group(1)])), template)
