"""Fixtures of the publishing tests on the shared broker."""

from __future__ import annotations

import pytest

from tools.harness.bus import delete_entities

AMQP_SHARED = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def names(unique_name):
    """Exchange and topic of this test alone on the shared broker; removed afterwards."""
    exchange, topic = f"{unique_name}-x", f"{unique_name}-alarms"
    yield exchange, topic
    delete_entities(AMQP_SHARED, exchanges=[exchange], queues=[f"{topic}.info"])
