"""Shared fixtures of the unit tests: what Alertmanager 0.25 really returned for the seed."""

from __future__ import annotations

import concurrent.futures
import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path("/work/shared/fixtures/alertmanager")
if not FIXTURES.is_dir():  # pragma: no cover - a checkout with fixtures inside
    FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "alertmanager"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def deliveries() -> list[dict[str, Any]]:
    return [json.loads(line) for line in
            (FIXTURES / "webhook_v4_deliveries.jsonl").read_text().splitlines() if line]


@pytest.fixture
def api_firing() -> list[dict[str, Any]]:
    return load("api_v2_alerts_firing.json")


@pytest.fixture
def api_after() -> list[dict[str, Any]]:
    return load("api_v2_alerts_after_resolve_and_silence.json")


@pytest.fixture
def webhook_deliveries() -> list[dict[str, Any]]:
    return deliveries()


@pytest.fixture
def db():
    """The one database thread the store is called from, as in the daemon."""
    executor = concurrent.futures.ThreadPoolExecutor(1)
    yield executor
    executor.shutdown(wait=True)
