"""Publishing alarm events with no loss: the oslo.messaging notifier that raises
when the broker did not confirm, and the dispatcher that drains the store's
outbox into it (in order per alarm, in parallel across alarms), and the
senders that run the notifier in threads of the worker or in child processes.
"""

from daemon.publish.dispatcher import Dispatcher
from daemon.publish.notifier import Notifier
from daemon.publish.process import ProcessSender
from daemon.publish.sender import Sender, ThreadSender

__all__ = ["Dispatcher", "Notifier", "ProcessSender", "Sender", "ThreadSender"]
