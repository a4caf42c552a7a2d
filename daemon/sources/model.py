"""The ``Alert`` value every source produces, and its identity.

An ``Alert`` is one observation of one Alertmanager alert, parsed and
validated.  It carries no state: the lifecycle tracker decides what an
observation means.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping

__all__ = ["Alert", "fingerprint"]

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF
_SEPARATOR = b"\xff"


def fingerprint(labels: Mapping[str, str], drop: Iterable[str] = ()) -> str:
    """Alertmanager's fingerprint of a label set, as 16 hex digits.

    FNV-1a 64 over the sorted label pairs, each name and value followed by
    0xff (prometheus/common model.LabelsToSignature).  Labels named in
    ``drop`` (replica labels) are left out first.

    :param labels: the alert's labels
    :param drop: label names to ignore
    """
    dropped = frozenset(drop)
    value = _FNV64_OFFSET
    for name in sorted(labels):
        if name in dropped:
            continue
        for part in (name.encode(), _SEPARATOR, labels[name].encode(), _SEPARATOR):
            for byte in part:
                value = ((value ^ byte) * _FNV64_PRIME) & _MASK64
    return f"{value:016x}"


@dataclasses.dataclass(frozen=True, slots=True)
class Alert:
    """One observation of an alert, from the API or from a webhook delivery.

    :ivar fingerprint: computed locally from ``labels`` minus replica labels
    :ivar status: ``firing``, or ``resolved`` (only webhook deliveries say so)
    :ivar state: Alertmanager's ``active``, ``suppressed`` or ``unprocessed``
    :ivar ends_at: None when Alertmanager gave none (webhook ``0001-01-01``)
    """

    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime.datetime
    ends_at: datetime.datetime | None
    status: str = "firing"
    state: str = "active"
    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()
    generator_url: str = ""
    updated_at: datetime.datetime | None = None

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def suppressed(self) -> bool:
        return self.state == "suppressed"
