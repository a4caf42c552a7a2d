"""The resolver interface between the transformer and the metrics backends.

The transformer awaits resolvers; it never does network I/O itself.  A
resolver turns the mapping's resource properties into resolved ones (a
compute host's FQDN, an instance UUID) and fetches enrichment values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["Resolution", "ResolveRequest", "Resolver"]


@dataclasses.dataclass(frozen=True, slots=True)
class ResolveRequest:
    """What the transformer asks about one alarm's resource.

    :ivar resource_type: the rule's resource type (``host``, ``instance`` ...)
        or None when the rule sets none
    :ivar properties: the mapping's result (property -> value or None)
    :ivar labels: the alert's labels
    :ivar queries: the rule's enrichment queries, name -> PromQL template
    """

    resource_type: str | None
    properties: Mapping[str, str | None]
    labels: Mapping[str, str]
    queries: Mapping[str, str] = dataclasses.field(default_factory=dict)


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
    """Anything that can resolve a resource; must not raise for lookup failures."""

    async def resolve(self, request: ResolveRequest) -> Resolution:
        ...
