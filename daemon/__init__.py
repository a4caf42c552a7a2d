"""alarm-relay: Alertmanager alerts in, alarm events on the OpenStack bus out.

oslo.service picks its concurrency backend on first use, and importing
oslo.messaging silently selects eventlet.  The threading backend must be chosen
here, before any submodule can import oslo.messaging.
"""

import warnings

# futurist imports eventlet when it is installed (oslo.service depends on it)
# and eventlet warns on import; we never use it.
warnings.filterwarnings("ignore", message=r"(?s)\s*Eventlet is deprecated")

from oslo_service import backend as _backend  # noqa: E402

try:
    _backend.init_backend(_backend.BackendType.THREADING)
except _backend.exceptions.BackendAlreadySelected:  # pragma: no cover - import order bug
    if _backend.get_backend_type() is not _backend.BackendType.THREADING:
        raise

__all__: list[str] = []
