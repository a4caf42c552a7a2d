"""Publishing alarm events with no loss: the SQLite outbox, the oslo.messaging
notifier that raises when the broker did not confirm, and the dispatcher that
drains one into the other (in order per alarm, in parallel across alarms).
"""

from daemon.publish.dispatcher import Dispatcher
from daemon.publish.notifier import Notifier
from daemon.publish.outbox import Outbox

__all__ = ["Dispatcher", "Notifier", "Outbox"]
