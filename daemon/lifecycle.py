"""Alert lifecycle: the one place that decides firing, updated and resolved.

Pure logic, no I/O.  (The tracker itself is built in issue 4; this module
holds the ``Transition`` contract the rest of the pipeline consumes.)
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Literal

from daemon.sources.model import Alert

__all__ = ["Transition", "TransitionKind"]

TransitionKind = Literal["firing", "updated", "resolved"]


@dataclasses.dataclass(frozen=True, slots=True)
class Transition:
    """A change of one alarm that must become one event.

    :ivar alarm_id: stable for one occurrence (cluster + fingerprint + startsAt)
    :ivar sequence: per alarm_id, 1 for firing, increasing after
    :ivar alert: the latest observation (for resolved: the last one seen)
    :ivar reason: why it resolved (resolved, disappeared, expired, silenced);
        None unless kind is resolved
    :ivar cluster: the Alertmanager cluster name
    :ivar source_url: the replica (or webhook peer) the observation came from
    """

    kind: TransitionKind
    alarm_id: str
    sequence: int
    alert: Alert
    observed_at: datetime.datetime
    cluster: str
    source_url: str
    reason: str | None = None
