"""The event's ``resource`` object: what the mapping matched and what the resolvers found.

:func:`build_resource` is the one place that assembles it, for the three
cases an alert can be in: no rule matched, a rule matched and no resolver was
asked, a rule matched and the resolvers answered.  The keys and their meaning
are documented in docs/events.md ("resource") and
``daemon/pipeline/schema.json``.
"""

from __future__ import annotations

from typing import Any, Final

from daemon.pipeline.mapping import Match
from daemon.pipeline.resolution import Resolution

__all__ = ["RESOURCE_KEYS", "build_resource"]

#: The keys of ``resource`` in documented order.
RESOURCE_KEYS: Final = ("type", "id", "properties", "rule", "mapped", "missing_labels",
                        "resolved", "unresolved_reason", "resolve_errors")

# Copied, then filled in: cheaper than a dict literal of nine keys (the hot path).
_UNMATCHED: Final[dict[str, Any]] = {
    **dict.fromkeys(RESOURCE_KEYS), "mapped": False, "resolved": False,
    "unresolved_reason": "unmatched"}
_UNRESOLVED: Final[dict[str, Any]] = {
    **dict.fromkeys(RESOURCE_KEYS), "mapped": True, "resolved": False,
    "unresolved_reason": "no resolver configured"}
_MAPPED: Final[dict[str, Any]] = {**dict.fromkeys(RESOURCE_KEYS), "mapped": True}


def build_resource(match: Match | None, found: Resolution | None = None) -> dict[str, Any]:
    """The ``resource`` object of an event (a new dict; its lists are new too).

    ``id`` is the first resolver's ``resource_id``, else the mapped property
    ``id``, else None.  The resource is ``resolved`` when a resolver gave an
    id or added a property; otherwise ``unresolved_reason`` says why: the
    resolvers' errors, ``no resolver could resolve it``, ``no resolver
    configured`` (``found`` None) or ``unmatched`` (``match`` None).

    :param match: the mapping's match (``CompiledMapping.match``), or None
        when no rule matched
    :param found: the resolvers' answers merged in resolver order: the
        first ``resource_id``, the properties they add (none of them already
        in the match's properties), their errors; None when none were asked
    :returns: a dict with the keys of :data:`RESOURCE_KEYS`, in that order
    """
    if match is None:
        resource = _UNMATCHED.copy()
        resource["properties"] = {}
        resource["missing_labels"] = []
        resource["resolve_errors"] = []
        return resource
    rule, properties, missing = match
    if found is None:
        resource = _UNRESOLVED.copy()
        resource["type"] = rule.type
        resource["id"] = properties.get("id")
        resource["properties"] = properties
        resource["rule"] = rule.ref
        resource["missing_labels"] = list(missing) if missing else []
        resource["resolve_errors"] = []
        return resource
    merged = dict(properties)
    merged.update(found.properties)
    resolved = found.resource_id is not None or bool(found.properties)
    errors = list(found.errors)
    if resolved:
        reason = None
    elif errors:
        reason = "; ".join(errors)
    else:
        reason = "no resolver could resolve it"
    resource = _MAPPED.copy()
    resource["type"] = rule.type
    resource["id"] = found.resource_id or merged.get("id")
    resource["properties"] = merged
    resource["rule"] = rule.ref
    resource["missing_labels"] = list(missing)
    resource["resolved"] = resolved
    resource["unresolved_reason"] = reason
    resource["resolve_errors"] = errors
    return resource
