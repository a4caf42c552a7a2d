"""Alert lifecycle: the one place that decides firing, updated and resolved.

Pure logic, no I/O: every method takes ``now`` (tz-aware UTC, the relay's
clock) from the caller.  The rules are written for operators and consumers in
docs/lifecycle.md; in short, every decision rests on what the sources said:

- **Identity follows Alertmanager's merge rule.**  Copies of one fingerprint
  (HA Prometheus replicas, Alertmanager replicas) whose active spans overlap
  are one occurrence, and the occurrence's ``startsAt`` is the earliest copy's.
  A copy with a later ``startsAt`` starts a new occurrence only when the old
  one is known to have ended: an explicit ``resolved`` delivery, or every
  replica that held the old occurrence answering without it.  The
  ``alarm_id`` is ``uuid5(ALARM_NAMESPACE, "<cluster>/<fingerprint>/<startsAt>")``
  of the first copy seen, ``/<n>`` appended when an occurrence is reopened.
- **Absence is evidence only from a replica that remembers.**  Each alarm
  keeps its *holders*: the (replica, epoch) pairs whose latest answer listed
  it, where the epoch is the replica's ``uptime`` (its start time).  A holder
  that answers in the same epoch without the alarm has dropped it; a holder
  that restarted forgot it, and its silence counts only once the alarm's last
  seen ``endsAt`` has passed (until then Alertmanager itself would still list
  it).  An alarm resolves when every holder has dropped it.
- **Nothing resolves on a timer.**  A failed replica changes nothing; an
  alarm only ever seen through the webhook (whose firing alerts carry no
  ``endsAt``) stays firing until a source says otherwise.
- **A resolved occurrence stays resolved.**  Copies of it that a lagging
  replica still lists are recognised by their ``startsAt`` and ignored; only a
  silence that ended (``suppressed_policy = resolve``) or Alertmanager
  receiving the alert again after its ``endsAt`` had passed reopens it.

Times from Alertmanager are in its clock.  :attr:`ReplicaPoll.clock_offset`
(Alertmanager's clock minus the relay's) converts, so that "has this
``endsAt`` passed?" is asked in the source's own clock, and every event has
``ends_at >= starts_at``.

The state is exported as JSON-able records (:meth:`LifecycleTracker.export_changes`)
stored with the events in one transaction, and read back with
:meth:`LifecycleTracker.restore`.
"""

from daemon.lifecycle.tracker import LifecycleTracker
from daemon.lifecycle.transition import ALARM_NAMESPACE, Transition, TransitionKind, alarm_id

__all__ = ["ALARM_NAMESPACE", "LifecycleTracker", "Transition", "TransitionKind", "alarm_id"]
