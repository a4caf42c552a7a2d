"""Root test configuration.

``import daemon`` first: it selects oslo.service's threading backend, which
must happen before any test module imports oslo.messaging (that import
silently selects eventlet).
"""

import daemon  # noqa: F401
