"""The transformer: one lifecycle ``Transition`` in, one ``AlarmEvent`` out.

Pure logic over a :class:`~daemon.pipeline.mapping.CompiledMapping`; the only
awaits are on the :class:`~daemon.pipeline.resolution.Resolver` protocol, each
bounded by ``resolve_timeout``.  The alarm's identity (``alarm_id``,
``fingerprint``) always comes from the transition, i.e. from the alert's full
label set, never from the resource: two alerts that map to the same resource
stay two alarms.  Without resolvers nothing is awaited: :meth:`Transformer.transform_sync`
builds the same event as a plain call.

The payload is documented in docs/events.md and described by the JSON Schema
``daemon/pipeline/schema.json``.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from oslo_log import log

from daemon import telemetry
from daemon.pipeline.event import SCHEMA_VERSION, AlarmEvent, new_event
from daemon.pipeline.mapping import CompiledMapping, Match
from daemon.pipeline.resolution import Resolution, Resolver, ResolveRequest
from daemon.pipeline.resource import build_resource
from daemon.pipeline.severity import DEFAULT_SEVERITY_MAP, SeverityMap

if TYPE_CHECKING:
    from oslo_config import cfg

    from daemon.lifecycle import Transition

__all__ = ["UNMATCHED_POLICIES", "Transformer"]

LOG = log.getLogger(__name__)

#: What ``unmatched`` may be: publish with ``resource.mapped`` false, or drop.
UNMATCHED_POLICIES: Final = ("emit", "drop")

_UTC: Final = datetime.UTC
_LOGGED_NAMES_LIMIT: Final = 10_000
_ISO_CACHE_LIMIT: Final = 4096
_TEMPLATE_CACHE_LIMIT: Final = 256
_MAX_ERROR_LENGTH: Final = 300


def _event_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUID strings, much cheaper than ``str(uuid.uuid4())``.

    Each has 122 bits from ``os.urandom`` and the version and variant bits of
    RFC 9562, like ``uuid.uuid4()``; made in blocks, handed out one by one.
    One hex string holds them all, 37 characters apart: the dashes, the
    version, the variant and a separator are written over it by slice
    assignment (in C), so no Python code runs per identifier.
    """
    text = bytearray(os.urandom(37 * count // 2 + 1).hex(), "ascii")
    del text[37 * count:]
    dashes = b"-" * count
    text[8::37] = dashes
    text[13::37] = dashes
    text[18::37] = dashes
    text[23::37] = dashes
    text[14::37] = b"4" * count
    text[19::37] = text[19::37].translate(_VARIANT)  # 10xx: 8, 9, a or b
    text[36::37] = b" " * count
    return text.decode("ascii").split()


_VARIANT: Final = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")
_ID_BLOCK: Final = 1024

#: Payload keys in documented order (docs/events.md); copied, then filled in.
_PAYLOAD: Final[dict[str, Any]] = dict.fromkeys((
    "schema_version", "event_id", "alarm_id", "fingerprint", "sequence", "name", "status",
    "reason", "severity", "severity_raw", "starts_at", "ends_at", "observed_at", "labels",
    "annotations", "generator_url", "silenced_by", "inhibited_by", "source", "resource",
    "metrics"))
_PAYLOAD["schema_version"] = SCHEMA_VERSION
_EVENT_TYPES: Final = {k: "alarm." + k for k in ("firing", "updated", "resolved")}


class Transformer:
    """Turns transitions into alarm events using the mapping and the resolvers.

    :param mapping: the compiled mapping
    :param resolvers: called concurrently for every matched alert; results are
        merged in this order (first ``resource_id`` wins, properties and
        metrics are added without overwriting)
    :param unmatched: ``emit`` (publish with ``resource.mapped`` false) or
        ``drop`` (return None for firing and updated transitions; a resolved
        transition is always published, since its firing may have been
        published under an earlier mapping)
    :param severity_map: raw severity (case-insensitive) -> normalised severity
    :param severity_label: the label holding the raw severity
    :param host: this relay's host name, reported as ``source.relay``
    :param resolve_timeout: seconds each resolver may take
    :raises ValueError: an unknown ``unmatched`` policy, a bad severity map or
        a non-positive timeout
    """

    def __init__(self, mapping: CompiledMapping, *, resolvers: Sequence[Resolver] = (),
                 unmatched: str = "emit",
                 severity_map: Mapping[str, str] = DEFAULT_SEVERITY_MAP,
                 severity_label: str = "severity", host: str = "",
                 resolve_timeout: float = 5.0) -> None:
        if unmatched not in UNMATCHED_POLICIES:
            raise ValueError(f"unmatched must be one of {UNMATCHED_POLICIES}, got {unmatched!r}")
        if not resolve_timeout > 0:
            raise ValueError(f"resolve_timeout must be positive, got {resolve_timeout!r}")
        self._mapping = mapping
        self._resolvers = tuple(resolvers)
        self._names = tuple(_resolver_name(r) for r in self._resolvers)
        self._drop = unmatched == "drop"
        self._severity = SeverityMap(severity_map)
        self._severity_label = severity_label
        self._host = host
        self._timeout = float(resolve_timeout)
        self._ids: list[str] = []
        self._iso: dict[datetime.datetime, str] = {}
        self._templates: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._unmatched_counters: dict[str, Any] = {}

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, mapping: CompiledMapping,
                  resolvers: Sequence[Resolver] = ()) -> Transformer:
        """Build a transformer from the ``[mapping]`` options.

        :param conf: the registered and parsed configuration
        :param mapping: the compiled mapping (``load_mapping(conf.mapping.path)``)
        :param resolvers: the resolvers, in order
        :raises ValueError: an option value that cannot work
        """
        group = conf.mapping
        return cls(mapping, resolvers=resolvers, unmatched=group.unmatched,
                   severity_map=group.severity_map, severity_label=group.severity_label,
                   host=conf.host, resolve_timeout=group.resolve_timeout)

    @property
    def has_resolvers(self) -> bool:
        """Whether transform() may wait on resolvers (the network)."""
        return bool(self._resolvers)

    @property
    def mapping(self) -> CompiledMapping:
        """The mapping in use."""
        return self._mapping

    def replace_mapping(self, mapping: CompiledMapping) -> CompiledMapping:
        """Use ``mapping`` from now on; transforms already running finish with the old one.

        The caller validates first (``load_mapping`` raises on an invalid
        file, so on error the old mapping simply stays).

        :param mapping: the new compiled mapping
        :returns: the previous mapping
        """
        old, self._mapping = self._mapping, mapping
        self._unmatched_counters.clear()
        LOG.info("Mapping replaced: %s (%s, %d rules) instead of %s (%s, %d rules)",
                 mapping.source, mapping.digest, len(mapping),
                 old.source, old.digest, len(old))
        return old

    async def transform(self, transition: Transition) -> AlarmEvent | None:
        """Build the event of one transition.

        Never raises for a resolver's failure or timeout: the event is built
        with ``resource.resolved`` false and the reason.  Without resolvers
        it never suspends and gives what :meth:`transform_sync` gives.

        :param transition: the lifecycle's transition
        :returns: the event, or None when no rule matches, the policy is
            ``drop`` and the transition is not ``resolved``
        """
        if not self._resolvers:
            return self.transform_sync(transition)
        match = self._mapping.match(transition.alert.labels)  # one snapshot of the mapping
        if match is None:
            if self._unmatched_dropped(transition):
                return None
            return self._event(transition, build_resource(None), {})
        found = await self._resolve(transition, match)
        return self._event(transition, build_resource(match, found), found.metrics)

    def transform_sync(self, transition: Transition) -> AlarmEvent | None:
        """:meth:`transform` as a plain call, for a transformer without resolvers.

        The event is the one ``await transform(transition)`` would give (same
        fields and values; only ``event_id`` differs, as between any two
        events), without a coroutine per transition.  Like every payload, it
        shares dicts with the alert (``labels``, ``annotations``) and with
        other events (``source``): treat it as read-only.

        :param transition: the lifecycle's transition
        :returns: the event, or None when no rule matches, the policy is
            ``drop`` and the transition is not ``resolved``
        :raises RuntimeError: resolvers are configured (see :attr:`has_resolvers`);
            only :meth:`transform` can wait for them
        """
        if self._resolvers:
            raise RuntimeError("transform_sync() cannot wait for resolvers; use transform()")
        match = self._mapping.match(transition.alert.labels)
        if match is None and self._unmatched_dropped(transition):
            return None
        return self._event(transition, build_resource(match), {})

    # ------------------------------------------------------------------ internals

    def _unmatched_dropped(self, transition: Transition) -> bool:
        """Count a transition no rule matches; whether the policy drops its event."""
        name = transition.alert.labels.get("alertname", "")
        counter = self._unmatched_counters.get(name)
        if counter is None:
            counter = self._unmatched_counter(name)
        counter.inc()
        return self._drop and transition.kind != "resolved"

    def _unmatched_counter(self, name: str) -> Any:
        """The counter child of one alertname; logs the first unmatched alert of each name.

        Past ``_LOGGED_NAMES_LIMIT`` names nothing more is logged (counted still).
        """
        counter = telemetry.ALERTS_UNMATCHED.labels(name)
        if len(self._unmatched_counters) < _LOGGED_NAMES_LIMIT:
            self._unmatched_counters[name] = counter
            LOG.warning("No mapping rule matches alerts named %r (%s); policy %s. Logged "
                        "once per alertname; alarm_relay_alerts_unmatched_total counts them.",
                        name, self._mapping.source, "drop" if self._drop else "emit")
        return counter

    async def _resolve(self, transition: Transition, match: Match) -> Resolution:
        """Ask every resolver about ``match``'s resource; their answers merged.

        Merged in resolver order: the first ``resource_id`` (as a string),
        the properties that are neither mapped nor given by an earlier
        resolver, the metrics not given by an earlier resolver (JSON-safe),
        and every error prefixed with its resolver's name.
        """
        rule, mapped, _ = match
        request = ResolveRequest(
            resource_type=rule.type, properties=dict(mapped),
            labels=transition.alert.labels, queries=rule.queries,
            alarm_id=transition.alarm_id, kind=transition.kind, rule=rule.ref)
        if len(self._resolvers) == 1:
            results = [await self._call(self._resolvers[0], self._names[0], request)]
        else:
            results = await asyncio.gather(*(
                self._call(r, n, request) for r, n in zip(self._resolvers, self._names,
                                                           strict=True)))
        added: dict[str, str | None] = {}
        metrics: dict[str, Any] = {}
        resource_id: str | None = None
        errors: list[str] = []
        for name, result in zip(self._names, results, strict=True):
            if result.errors:
                errors.extend(_clip(f"{name}: {e}") for e in result.errors)
            if result.resource_id and resource_id is None:
                resource_id = str(result.resource_id)
            for key, value in result.properties.items():
                key = str(key)
                if key not in mapped and key not in added:
                    added[key] = _property_value(value)
            for key, value in result.metrics.items():
                metrics.setdefault(str(key), _json_value(value))
        return Resolution(resource_id=resource_id, properties=added, metrics=metrics,
                          errors=tuple(errors))

    async def _call(self, resolver: Resolver, name: str, request: ResolveRequest) -> Resolution:
        try:
            result = await asyncio.wait_for(resolver.resolve(request), self._timeout)
        except TimeoutError:
            # The resolver's own deadline is shorter and it counts its failures
            # (alarm_relay_resolver_failures_total): this is the safety net.
            LOG.warning("Resolver %s timed out after %ss for alarm %s",
                        name, self._timeout, request.alarm_id)
            return Resolution(errors=(f"timed out after {self._timeout:g}s",))
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a resolver must not raise; if it does, the event still goes
            LOG.warning("Resolver %s failed for alarm %s: %s",
                        name, request.alarm_id, type(err).__name__)
            LOG.debug("Resolver %s failure", name, exc_info=True)
            return Resolution(errors=(f"failed: {type(err).__name__}",))
        if not isinstance(result, Resolution):
            return Resolution(errors=(f"returned {type(result).__name__}, not a Resolution",))
        return result

    def _iso_time(self, value: datetime.datetime) -> str:
        text = self._iso.get(value)
        if text is None:
            if value.tzinfo is None:
                utc = value.replace(tzinfo=_UTC)
            else:
                utc = value.astimezone(_UTC)
            text = utc.isoformat()[:-6] + "Z"
            if len(self._iso) >= _ISO_CACHE_LIMIT:
                self._iso.clear()
            self._iso[value] = text
        return text

    def _template(self, key: tuple[Any, ...]) -> dict[str, Any]:
        """The payload with what ``key`` decides filled in (see :meth:`_event`)."""
        kind, raw, observed_at, cluster, url = key
        template = _PAYLOAD.copy()
        template["status"] = "resolved" if kind == "resolved" else "firing"
        template["severity"] = self._severity.normalise(raw)
        template["severity_raw"] = raw
        template["observed_at"] = self._iso_time(observed_at)
        template["source"] = {"type": "alertmanager", "cluster": cluster, "url": url,
                              "relay": self._host}
        if len(self._templates) >= _TEMPLATE_CACHE_LIMIT:
            self._templates.clear()
        self._templates[key] = template
        return template

    def _event(self, transition: Transition, resource: dict[str, Any],
               metrics: Mapping[str, Any]) -> AlarmEvent:
        """The event of a transition whose resource and metrics are known."""
        alert = transition.alert
        labels = alert.labels
        kind = transition.kind
        raw = labels.get(self._severity_label)
        # The transitions of one observation share kind, time, cluster and
        # source, and severities are few: what they decide is filled in once
        # per combination, in a template copied for each event.
        key = (kind, raw, transition.observed_at, transition.cluster, transition.source_url)
        template = self._templates.get(key)
        if template is None:
            template = self._template(key)
        payload = template.copy()
        ids = self._ids
        if not ids:
            ids = self._ids = _event_ids(_ID_BLOCK)
        payload["event_id"] = event_id = ids.pop()
        payload["alarm_id"] = alarm_id = transition.alarm_id
        payload["fingerprint"] = alert.fingerprint
        payload["sequence"] = sequence = transition.sequence
        payload["name"] = labels.get("alertname", "")
        if kind == "resolved":
            payload["reason"] = transition.reason or "resolved"
            end = _end_time(alert.ends_at, alert.starts_at, transition.observed_at)
            payload["ends_at"] = self._iso.get(end) or self._iso_time(end)
        starts_at = alert.starts_at
        payload["starts_at"] = self._iso.get(starts_at) or self._iso_time(starts_at)
        # Shared, not copied: an alert is immutable, and so is the payload once built.
        payload["labels"] = labels if type(labels) is dict else dict(labels)
        annotations = alert.annotations
        payload["annotations"] = (annotations if type(annotations) is dict
                                  else dict(annotations))
        payload["generator_url"] = alert.generator_url or None
        silenced_by = alert.silenced_by
        payload["silenced_by"] = list(silenced_by) if silenced_by else []
        inhibited_by = alert.inhibited_by
        payload["inhibited_by"] = list(inhibited_by) if inhibited_by else []
        payload["resource"] = resource
        payload["metrics"] = metrics
        return new_event(event_id, _EVENT_TYPES.get(kind) or "alarm." + kind, alarm_id,
                         sequence, payload)


def _end_time(ends_at: datetime.datetime | None, starts_at: datetime.datetime,
              observed_at: datetime.datetime) -> datetime.datetime:
    """When a resolved alarm ended, never before it started.

    The lifecycle tracker gives the end in the source's clock (it knows the
    offset); ``observed_at`` (the relay's clock) only stands in when the end is
    missing.
    """
    end = observed_at if ends_at is None else ends_at
    try:
        return end if end >= starts_at else starts_at
    except TypeError:  # naive against aware
        return observed_at


def _resolver_name(resolver: object) -> str:
    name = getattr(resolver, "NAME", None)
    return name if isinstance(name, str) and name else type(resolver).__name__


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_LENGTH else text[:_MAX_ERROR_LENGTH - 3] + "..."


def _property_value(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return _clip(repr(value))


def _json_value(value: object, depth: int = 0) -> Any:
    """``value`` made JSON-safe: NaN and infinities become None, unknown types strings."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth < 8:
        if isinstance(value, Mapping):
            return {str(k): _json_value(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [_json_value(v, depth + 1) for v in value]
    return _clip(str(value))
