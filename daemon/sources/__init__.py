"""Sources of alerts: the Alertmanager poller and the webhook receiver.

Both produce :class:`~daemon.model.Alert` values and hand them to one injected
callable; neither keeps alert state (the lifecycle tracker does).
"""

from daemon.sources.alertmanager import AlertmanagerPoller, PollerSettings
from daemon.sources.webhook import WebhookReceiver, WebhookSettings

__all__ = ["AlertmanagerPoller", "PollerSettings", "WebhookReceiver", "WebhookSettings"]
