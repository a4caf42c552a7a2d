"""Publishing alarm events with no loss: the oslo.messaging notifier that raises
when the broker did not confirm, and the dispatcher that drains the store's
outbox into it (in order per alarm, in parallel across alarms).
"""

from daemon.publish.dispatcher import Dispatcher
from daemon.publish.notifier import Notifier

__all__ = ["Dispatcher", "Notifier"]
