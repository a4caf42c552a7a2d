"""Root test configuration.

``import daemon`` first: it selects oslo.service's threading backend, which
must happen before any test module imports oslo.messaging (that import
silently selects eventlet).
"""

import gc

import pytest

import daemon  # noqa: F401


@pytest.fixture(autouse=True)
def _unfrozen_heap():
    """A test whose intake froze the heap (daemon/heap.py) leaves nothing frozen behind:
    the next test's objects are collected as usual."""
    yield
    gc.unfreeze()
