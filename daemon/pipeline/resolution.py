"""Resolution: what the transformer asks about a resource, and what it gets back.

The contract between the pure pipeline and the datasources: the transformer
awaits anything that implements :class:`Resolver` (``daemon.datasources``'
``DatasourceResolver`` in the daemon) and never does network I/O itself.  A
resolver turns the mapping's resource properties into resolved ones (a
compute host's FQDN, an instance UUID) and fetches enrichment values; the
placeholders of those queries are parsed here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Final, Protocol

__all__ = ["PLACEHOLDER", "Resolution", "ResolveRequest", "Resolver", "names_something",
           "placeholders"]

#: A placeholder of an enrichment query template: a name in braces.  The name
#: is any label or property name (Prometheus 3 allows any UTF-8 label name,
#: ``{service.name}``) without a brace, a quote, ``=`` or ``~``: those are
#: what PromQL's own braces hold (``{job="node"}``, ``{"service.name"="a"}``),
#: so the two never clash.  Regular-expression syntax inside a matcher's
#: string is not a placeholder either: counted repetitions (``a{2,3}``,
#: ``{2}``, ``{,3}``) and Unicode classes (``\p{Greek}``).
PLACEHOLDER: Final = re.compile(
    r"(?<!\\[pP])\{(?!(?:[0-9]+,?[0-9]*|,[0-9]+)\})([^{}\"'`=~]*)\}")


def placeholders(template: str) -> list[str]:
    """The placeholder names of an enrichment query template, in order.

    A name may be empty or blank (``{}``, ``{ job }``): such a placeholder
    names nothing, and the mapping file refuses it (``load_mapping``).

    :param template: PromQL with ``{name}`` placeholders
    """
    return PLACEHOLDER.findall(template)


def names_something(placeholder: str) -> bool:
    """Whether a placeholder's name can name a label or property.

    Empty, blank, or with blanks around it (``{}``, ``{ job }``), it names
    nothing: the mapping file refuses it and a query holding it is not run.

    :param placeholder: a name :func:`placeholders` returned
    """
    return bool(placeholder) and placeholder == placeholder.strip()


@dataclasses.dataclass(frozen=True, slots=True)
class ResolveRequest:
    """What the transformer asks about one alarm's resource.

    :ivar resource_type: the rule's resource type (``host``, ``instance`` ...)
        or None when the rule sets none
    :ivar properties: the mapping's result (property -> value or None)
    :ivar labels: the alert's labels
    :ivar queries: the rule's enrichment queries (``metrics:`` in the mapping
        file), name -> PromQL template.  A placeholder ``{name}`` stands for the
        value of the alert label or resource property ``name`` (properties,
        including resolved ones, win); the resolver substitutes it escaped for
        a double-quoted PromQL string (``daemon/datasources/promql.py``).  See
        docs/mapping.md.
    :ivar alarm_id: the alarm being resolved (for caches and logs)
    :ivar kind: the transition: ``firing``, ``updated`` or ``resolved``
    :ivar rule: the matching rule's reference (its name or ``rule N``)
    """

    resource_type: str | None
    properties: Mapping[str, str | None]
    labels: Mapping[str, str]
    queries: Mapping[str, str] = dataclasses.field(default_factory=dict)
    alarm_id: str = ""
    kind: str = "firing"
    rule: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Resolution:
    """What a resolver found.

    :ivar resource_id: the resolved resource id (FQDN, UUID) or None
    :ivar properties: resolved properties to add (``host_fqdn``, ``instance_uuid``)
    :ivar metrics: enrichment values by query name
    :ivar errors: one human-readable reason per thing that could not be resolved
    """

    resource_id: str | None = None
    properties: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    errors: tuple[str, ...] = ()


class Resolver(Protocol):
    """Anything that can resolve a resource; must not raise for lookup failures.

    The transformer calls every configured resolver concurrently, each under
    ``asyncio.wait_for(..., resolve_timeout)``; a timeout or an exception is
    recorded as an error of that resolver and the event is published anyway.
    Results are merged in resolver order: the first ``resource_id`` wins, and
    properties and metrics are added without overwriting what the mapping or
    an earlier resolver already gave.  An optional ``NAME`` attribute names the
    resolver in errors and metrics.
    """

    async def resolve(self, request: ResolveRequest) -> Resolution:
        ...
