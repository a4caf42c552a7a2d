"""Sources of alerts: the Alertmanager poller and the webhook receiver.

Both produce :class:`~daemon.sources.model.Alert` values and hand them to one
injected callable; neither keeps alert state (the lifecycle tracker does).
"""

from daemon.sources.model import Alert, ParseCache, fingerprint, parse_alert

__all__ = ["Alert", "ParseCache", "fingerprint", "parse_alert"]
