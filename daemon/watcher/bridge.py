"""What the Watcher bridge does with one alarm event: pure decisions plus Watcher calls.

:meth:`Bridge.handle` takes one event (type and payload, schema 1.0) and

1. skips it when its ``event_id`` was handled before (a redelivery) or its
   ``sequence`` is not above the last one handled for its alarm (order per alarm);
2. for a firing alarm (``alarm.firing`` or ``alarm.updated`` with status
   ``firing``, neither silenced nor inhibited), applies every rule that
   matches, in file order: unless the (resource, template) is in cooldown,
   it finds or creates one EVENT audit named deterministically after the
   alarm and the rule (:func:`audit_name`), triggers it through the webhook
   API and records it;
3. records the event as handled.

Idempotent by construction: the state says which (alarm, rule) is done, and
the audit's name is looked up before one is created, so a crash between
"audit created" and "state saved" (or "triggered" and "saved") neither creates
nor triggers a second audit. An audit is never triggered twice: Watcher 17
leaves an EVENT audit re-triggered after SUCCEEDED stuck ONGOING.

A recoverable :class:`~daemon.exception.WatcherError` propagates: the caller
keeps the event unacknowledged and calls again later; nothing was marked
handled. A permanent refusal is recorded, logged and counted, and the event
is handled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from oslo_log import log

from daemon.exception import WatcherError
from daemon.watcher import telemetry
from daemon.watcher.client import Audit
from daemon.watcher.rules import ParameterError, WatcherRule
from daemon.watcher.state import AuditRecord, AuditStatus, BridgeState

__all__ = ["Bridge", "WatcherAPI", "audit_name", "resource_key"]

LOG = log.getLogger(__name__)

_FIRING_TYPES = frozenset({"alarm.firing", "alarm.updated"})
_SAFE = re.compile(r"[A-Za-z0-9_.-]+\Z")
#: Watcher truncates audit names to 63 characters.
_MAX_NAME = 63


class WatcherAPI(Protocol):
    """What the bridge needs from Watcher (:class:`~daemon.watcher.client.WatcherClient`)."""

    def template_uuid(self, ident: str) -> str: ...

    def find_audit(self, name: str) -> Audit | None: ...

    def create_audit(self, *, name: str, template_uuid: str,
                     parameters: Mapping[str, Any]) -> Audit: ...

    def trigger(self, audit_uuid: str, body: Mapping[str, Any]) -> None: ...


def _digest(text: str, size: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:size]


def audit_name(alarm_id: str, rule: str) -> str:
    """The audit's name for (alarm, rule): deterministic, unique, at most 63 characters.

    ``<alarm_id>-<rule>`` when that fits (a UUID alarm_id and a rule name of
    up to 20 characters); longer or unusual parts are shortened with a digest.
    """
    alarm_part = alarm_id if _SAFE.match(alarm_id) and len(alarm_id) <= 36 else _digest(
        alarm_id, 32)
    rule_part = rule if len(rule) <= 20 else f"{rule[:11]}-{_digest(rule, 8)}"
    name = f"{alarm_part}-{rule_part}"
    assert len(name) <= _MAX_NAME, name
    return name


def resource_key(event: Mapping[str, Any]) -> str:
    """What the cooldown is counted per: the resource, or the alert when it has none.

    ``<type>:<id>`` for a resolved resource, ``<type>:<properties as JSON>`` for a
    mapped one (without ``<type>:`` when the rule gives no type), ``fingerprint:<fp>``
    (the same alert flapping) otherwise.
    """
    resource = event.get("resource") or {}
    prefix = f"{resource['type']}:" if resource.get("type") else ""
    if resource.get("id"):
        return f"{prefix}{resource['id']}"
    properties = resource.get("properties") or {}
    if resource.get("mapped") and any(properties.values()):
        return f"{prefix}{json.dumps(properties, sort_keys=True, separators=(',', ':'))}"
    return f"fingerprint:{event.get('fingerprint') or event.get('alarm_id')}"


class Bridge:
    """Alarm events in, Watcher audits out (see the module doc).

    :param rules: the rules, in file order
    :param state: the durable state
    :param watcher: the Watcher API client
    :param default_cooldown: seconds, for rules without ``cooldown``
    :param clock: returns epoch seconds (tests pass their own)
    """

    def __init__(self, *, rules: Sequence[WatcherRule], state: BridgeState,
                 watcher: WatcherAPI, default_cooldown: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.rules = tuple(rules)
        self.state = state
        self.watcher = watcher
        self.default_cooldown = default_cooldown
        self.clock = clock
        self._reported: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def replace_rules(self, rules: Sequence[WatcherRule]) -> None:
        """Use new rules from the next event on (a reload)."""
        with self._lock:
            self.rules = tuple(rules)

    def handle(self, event_type: str, payload: Any) -> str:
        """Handle one event; return the outcome (for metrics): applied, duplicate, stale, invalid.

        :raises WatcherError: recoverable only: Watcher or Keystone could not be
            asked; nothing was marked handled, call again later
        """
        with self._lock:  # one event at a time: the order per alarm holds
            return self._handle(event_type, payload)

    def _handle(self, event_type: str, payload: Any) -> str:
        if not isinstance(payload, Mapping):
            LOG.warning("Ignoring a %s notification whose payload is not an object",
                        event_type)
            return "invalid"
        event_id, alarm_id = payload.get("event_id"), payload.get("alarm_id")
        sequence = payload.get("sequence")
        if (not isinstance(event_id, str) or not event_id or not isinstance(alarm_id, str)
                or not alarm_id or not isinstance(sequence, int) or isinstance(sequence, bool)):
            LOG.warning("Ignoring a %s event without event_id, alarm_id or sequence "
                        "(not schema 1.0?)", event_type)
            return "invalid"
        if self.state.seen(event_id):
            LOG.debug("Event %s of alarm %s seen before: skipped", event_id, alarm_id)
            return "duplicate"
        if sequence <= self.state.last_sequence(alarm_id):
            LOG.debug("Event %s of alarm %s has sequence %s, not above the last one "
                      "handled: skipped", event_id, alarm_id, sequence)
            self.state.finish_event(event_id, alarm_id, sequence, self.clock())
            return "stale"
        if self._fires(event_type, payload):
            for rule in self.rules:
                if rule.matches(payload):
                    self._apply(rule, payload)
        self.state.finish_event(event_id, alarm_id, sequence, self.clock())
        return "applied"

    @staticmethod
    def _fires(event_type: str, payload: Mapping[str, Any]) -> bool:
        return (event_type in _FIRING_TYPES and payload.get("status") == "firing"
                and not payload.get("silenced_by") and not payload.get("inhibited_by"))

    def _apply(self, rule: WatcherRule, event: Mapping[str, Any]) -> None:
        alarm_id = event["alarm_id"]
        record = self.state.audit(alarm_id, rule.name)
        if record is not None and record.status.done:
            return
        name = audit_name(alarm_id, rule.name)
        key = resource_key(event)
        now = self.clock()
        if record is None:
            last = self.state.last_trigger(key, rule.audit_template)
            cooldown = self.default_cooldown if rule.cooldown is None else rule.cooldown
            if last is not None and now - last < cooldown:
                self.state.save_audit(AuditRecord(
                    alarm_id, rule.name, AuditStatus.COOLDOWN, name,
                    reason=f"{key} in cooldown for {rule.audit_template}", updated_at=now))
                telemetry.COOLDOWN_SKIPS.labels(rule=rule.name).inc()
                LOG.info("Alarm %s (%s): no audit, rule %s: %s had an audit of template %s "
                         "%.0fs ago (cooldown %.0fs)", alarm_id, event.get("name"),
                         rule.name, key, rule.audit_template, now - last, cooldown)
                return
        # Refusals are handled outside the except blocks: a log call made inside one
        # would get the exception's traceback appended by oslo.log.
        refusal: tuple[str, str] | None = None
        try:
            parameters = rule.render_parameters(event)
        except ParameterError as err:
            refusal = ("parameters", f"cannot fill the parameters: {err}")
        else:
            try:
                audit, how = self._create_and_trigger(rule, event, name, record, parameters, now)
            except WatcherError as err:
                if err.recoverable:
                    raise
                refusal = (err.reason, str(err))
        if refusal is not None:
            self._refuse(rule, event, name, *refusal)
            return
        at = self.clock()
        self.state.save_trigger(AuditRecord(alarm_id, rule.name, AuditStatus.TRIGGERED, name,
                                            audit.uuid, updated_at=at),
                                key, rule.audit_template, at)
        if how == "triggered":
            telemetry.TRIGGERS.labels(rule=rule.name).inc()
        LOG.info("Alarm %s (%s): Watcher audit %s (%s) %s, template %s, rule %s",
                 alarm_id, event.get("name"), audit.uuid, name, how, rule.audit_template,
                 rule.name)

    def _create_and_trigger(self, rule: WatcherRule, event: Mapping[str, Any], name: str,
                            record: AuditRecord | None, parameters: dict[str, Any],
                            now: float) -> tuple[Audit, str]:
        """Find or create the audit, record it, trigger it unless it was; (audit, what was done).

        :raises WatcherError: from the Watcher client
        """
        audit = self.watcher.find_audit(name)
        if audit is None:
            # Looked up for each audit (audits are rare): a template re-created under the
            # same name is found by its new UUID.
            template = self.watcher.template_uuid(rule.audit_template)
            audit = self.watcher.create_audit(name=name, template_uuid=template,
                                              parameters=parameters)
        if record is None or record.audit_uuid != audit.uuid:
            self.state.save_audit(AuditRecord(event["alarm_id"], rule.name,
                                              AuditStatus.CREATED, name, audit.uuid,
                                              updated_at=now))
        if audit.state != "PENDING":
            # Triggered before a crash lost the record: never trigger twice.
            return audit, f"found already triggered ({audit.state})"
        self.watcher.trigger(audit.uuid, self._trigger_body(rule, event))
        return audit, "triggered"

    def _refuse(self, rule: WatcherRule, event: Mapping[str, Any], name: str, reason: str,
                message: str) -> None:
        alarm_id = event["alarm_id"]
        self.state.save_audit(AuditRecord(alarm_id, rule.name, AuditStatus.REFUSED, name,
                                          reason=f"{reason}: {message}"[:500],
                                          updated_at=self.clock()))
        telemetry.FAILURES.labels(reason=reason).inc()
        first = (rule.name, reason) not in self._reported
        self._reported.add((rule.name, reason))
        # ERROR the first time per rule and reason, then DEBUG: the counter has them all.
        LOG.log(logging.ERROR if first else logging.DEBUG,
                "Alarm %s (%s): no Watcher audit for rule %s (template %s): %s%s",
                alarm_id, event.get("name"), rule.name, rule.audit_template, message,
                "" if first else " (again)")

    @staticmethod
    def _trigger_body(rule: WatcherRule, event: Mapping[str, Any]) -> dict[str, Any]:
        resource = event.get("resource") or {}
        return {"source": "alarm-relay", "rule": rule.name, "alarm_id": event["alarm_id"],
                "event_id": event["event_id"], "name": event.get("name"),
                "severity": event.get("severity"),
                "resource": {"type": resource.get("type"), "id": resource.get("id")}}
