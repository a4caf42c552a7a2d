"""What one datasource is asked: the host FQDN of a target, the UUID of an instance.

Each lookup is one or two instant queries (plain selectors: Aetos can rewrite
them for a filtered token) and returns a :class:`Lookup`: the value, or why
there is none, phrased for the operator (docs/aetos.md).  The resolver asks
the datasources in order and caches what they answer.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Awaitable, Callable

from daemon.datasources import promql
from daemon.datasources.base import Datasource

__all__ = ["KnownFqdns", "Lookup", "explain_empty", "find_host", "find_instance", "host_part",
           "short_matches"]

#: Every ``fqdn_label`` value of a datasource (the resolver caches them).
KnownFqdns = Callable[[Datasource], Awaitable[frozenset[str]]]


@dataclasses.dataclass(frozen=True, slots=True)
class Lookup:
    """A finished lookup: the value found, or why there is none."""

    value: str | None
    reason: str | None = None
    backend: str | None = None


async def find_host(backend: Datasource, key: str, known: KnownFqdns) -> Lookup:
    """The FQDN of the host whose target is ``key`` (``10.0.0.5:9100``, ``compute-1``).

    :param known: every ``fqdn_label`` value of the backend (cached by the caller)
    :raises DatasourceError: the backend failed
    """
    label = backend.fqdn_label
    # Target labels are on every target's ``up``; a plain selector (no
    # aggregation) is also what Aetos can rewrite for a filtered token.
    query = promql.selector("up", instance=key, **{label: ("!=", "")})
    fqdns = sorted({s.labels[label] for s in (await backend.query(query)).vector
                    if s.labels.get(label)})
    if len(fqdns) == 1:
        return Lookup(fqdns[0])
    if len(fqdns) > 1:
        return Lookup(None, f"collision: series with instance=\"{key}\" carry "
                             f"{len(fqdns)} values of {label}: {', '.join(fqdns)}")
    host = host_part(key)
    known = await known(backend)
    if host in known:
        return Lookup(host)
    candidates = sorted(short_matches(host, known))
    if len(candidates) == 1:
        return Lookup(candidates[0])
    if len(candidates) > 1:
        return Lookup(None, f"collision: short name '{host.split('.')[0]}' matches "
                             f"{len(candidates)} FQDNs: {', '.join(candidates)}")
    reason = (f"no current series with instance=\"{key}\" carries label {label}, "
              f"and no {label} value matches '{host}' ({backend.NAME}) -- check "
              f"that the exporter's targets carry the {label} label")
    return Lookup(None, await explain_empty(backend, reason))

async def find_instance(backend: Datasource, name: str, scope: str | None,
                    name_label: str) -> Lookup:
    """The instance UUID of the libvirt domain ``name``, on exporter ``scope`` if given.

    :param name_label: the label holding the instance name (libvirt's ``domain``)
    :raises DatasourceError: the backend failed
    """
    label = backend.instance_uuid_label
    matchers: dict[str, str | tuple[str, str]] = {
        name_label: name, label: ("!=", "")}
    if scope:
        matchers["instance"] = scope
    query = promql.selector(**matchers)
    uuids = sorted({s.labels[label] for s in (await backend.query(query)).vector
                    if s.labels.get(label)})
    if len(uuids) == 1:
        return Lookup(uuids[0])
    if len(uuids) > 1:
        return Lookup(None, f"collision: {name_label}="
                             f"\"{name}\" has {len(uuids)} values of {label}: "
                             f"{', '.join(uuids)}")
    where = f" on instance=\"{scope}\"" if scope else ""
    reason = (f"no current series with {name_label}="
              f"\"{name}\"{where} carries label {label} ({backend.NAME}) -- check "
              "instance_uuid_label and the libvirt exporter's labels")
    return Lookup(None, await explain_empty(backend, reason))

async def explain_empty(backend: Datasource, reason: str) -> str:
    """``reason``, plus the backend's word on a token that filters results away."""
    filtered = await backend.filtered()
    return f"{reason}; {filtered}" if filtered else reason


def host_part(value: str) -> str:
    """``10.0.0.5:9100`` -> ``10.0.0.5``; ``[::1]:9100`` -> ``::1``; names as they are."""
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.rsplit(":", 1)[0]
    return value


def short_matches(host: str, known: frozenset[str]) -> set[str]:
    """FQDNs whose first label is ``host``'s (never for an IP address)."""
    try:
        ipaddress.ip_address(host)
        return set()
    except ValueError:
        pass
    short = host.split(".")[0]
    if not short:
        return set()
    return {fqdn for fqdn in known
            if fqdn.split(".")[0] == short and (host == short or fqdn.startswith(host + "."))}
