"""Fixtures that start real services (tools/harness) on free loopback ports for one test.

Every test under tests/functional is marked ``functional`` automatically. Each fixture starts
a fresh service and stops it (and removes its temp dir) when the test ends, so tests never
share state except through the machine's RabbitMQ, where they isolate by a unique topic
(``unique_name``).

Typical start-up times here: Alertmanager, Prometheus and node exporter ~0.1 s, Aetos ~0.6 s,
a 2-replica Alertmanager cluster ~0.3 s, a private RabbitMQ node ~4 s, a private Redis ~0.1 s.

For several relays (issue 15): ``postgresql_url`` and ``mariadb_url`` are fresh databases
on the machine's shared servers (``database_url`` runs a test on SQLite, PostgreSQL and
MariaDB in turn), ``coordination_url`` is a tooz URL with a key namespace of the test's own
on the shared Redis, and ``redis_server`` a private Redis for tests that stop it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.publish.notifier import PRIORITIES
from tools.harness import services
from tools.harness.bus import delete_entities
from tools.harness.databases import MariaDBDatabase, PostgresDatabase, SharedDatabase
from tools.harness.redis_server import REDIS_SERVER_BIN, RedisNamespace, RedisServer
from tools.harness.services import (
    Aetos,
    Alertmanager,
    AlertmanagerCluster,
    NodeExporter,
    Prometheus,
    RabbitNode,
    ScrapeTarget,
    shared_transport_url,
)

#: The ``fqdn`` target label Prometheus attaches to the node exporter (as a compute node would
#: carry in a real cloud); Aetos lookups by ``fqdn_label`` find it.
FQDN = "compute-1.example.org"

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees every collected item of the session, so filter on our directory.
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.functional)


def _require(binary: str) -> None:
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is missing: run `make services` (installs the Debian packages)")


@pytest.fixture
def unique_name() -> Iterator[str]:
    """A name no other test uses (topics, exchanges, queues on the shared broker).

    Afterwards the shared broker's queues and exchanges named after it the way the tests
    name them (``NAME``, ``NAME-alarms`` topics, ``NAME``, ``NAME-x`` exchanges) are
    deleted, so test runs do not pile them up on a developer's RabbitMQ.
    """
    name = f"relaytest-{uuid.uuid4().hex[:12]}"
    yield name
    topics = (name, f"{name}-alarms")
    try:
        delete_entities(shared_transport_url(), exchanges=(name, f"{name}-x"),
                        queues=[f"{topic}.{priority}" for topic in topics
                                for priority in PRIORITIES])
    except Exception:  # noqa: BLE001 - the broker may be down after an outage test
        pass


@pytest.fixture
def fqdn() -> str:
    return FQDN


@pytest.fixture
def alertmanager_factory() -> Iterator[Callable[..., Alertmanager]]:
    """``make(**kwargs) -> started Alertmanager``; all are stopped at the end of the test."""
    _require(services.ALERTMANAGER_BIN)
    made: list[Alertmanager] = []

    def make(**kwargs: Any) -> Alertmanager:
        am = Alertmanager(**kwargs)
        made.append(am)
        return am.start()

    yield make
    for am in reversed(made):
        am.close()


@pytest.fixture
def alertmanager(alertmanager_factory: Callable[..., Alertmanager]) -> Alertmanager:
    """A fresh standalone Alertmanager (no webhook receiver, clustering off)."""
    return alertmanager_factory()


@pytest.fixture
def alertmanager_cluster_factory() -> Iterator[Callable[..., AlertmanagerCluster]]:
    """``make(n=2, **kwargs) -> started AlertmanagerCluster``; all stopped at test end."""
    _require(services.ALERTMANAGER_BIN)
    made: list[AlertmanagerCluster] = []

    def make(n: int = 2, **kwargs: Any) -> AlertmanagerCluster:
        cluster = AlertmanagerCluster(n, **kwargs)
        made.append(cluster)
        return cluster.start()

    yield make
    for cluster in reversed(made):
        cluster.close()


@pytest.fixture
def alertmanager_cluster(
    alertmanager_cluster_factory: Callable[..., AlertmanagerCluster],
) -> AlertmanagerCluster:
    """Two gossiping Alertmanager replicas (``cluster.urls`` for the relay's config)."""
    return alertmanager_cluster_factory(2)


@pytest.fixture
def node_exporter() -> Iterator[NodeExporter]:
    """A node exporter; ``node_exporter.set_metric(name, value, labels)`` for custom values."""
    _require(services.NODE_EXPORTER_BIN)
    with NodeExporter() as exporter:
        yield exporter


@pytest.fixture
def prometheus_factory() -> Iterator[Callable[..., Prometheus]]:
    """``make(targets=[...], rules=..., alertmanagers=[...]) -> started Prometheus``."""
    _require(services.PROMETHEUS_BIN)
    made: list[Prometheus] = []

    def make(**kwargs: Any) -> Prometheus:
        prom = Prometheus(**kwargs)
        made.append(prom)
        return prom.start()

    yield make
    for prom in reversed(made):
        prom.close()


@pytest.fixture
def prometheus(
    prometheus_factory: Callable[..., Prometheus], node_exporter: NodeExporter
) -> Prometheus:
    """Prometheus scraping ``node_exporter`` with target label ``fqdn=FQDN``, first scrape done."""
    prom = prometheus_factory(targets=[ScrapeTarget(node_exporter.address, {"fqdn": FQDN})])
    prom.wait_for_series(f'up{{job="node",fqdn="{FQDN}"}} == 1')
    return prom


@pytest.fixture
def aetos(prometheus: Prometheus) -> Iterator[Aetos]:
    """Aetos in noauth mode in front of ``prometheus``; send ``Aetos.headers()`` (admin)."""
    with Aetos(prometheus=prometheus) as server:
        yield server


@pytest.fixture(scope="session")
def rabbit_url() -> str:
    """transport_url of the machine's shared RabbitMQ; isolate with ``unique_name``."""
    return shared_transport_url()


@pytest.fixture
def rabbit_node() -> Iterator[RabbitNode]:
    """A private RabbitMQ node for outage tests (``stop_app()``, ``start_app()``, ``kill()``)."""
    _require(services.RABBITMQ_SERVER_BIN)
    with RabbitNode() as node:
        yield node


# --------------------------------------------------------------------------- SQL and Redis


@pytest.fixture
def postgresql_database() -> Iterator[PostgresDatabase]:
    """A fresh database and user of this test's own on the shared PostgreSQL, dropped after."""
    with PostgresDatabase() as database:
        yield database


@pytest.fixture
def postgresql_url(postgresql_database: PostgresDatabase) -> str:
    """``postgresql+psycopg2://USER:PASSWORD@127.0.0.1:5432/NAME`` of a fresh database."""
    return postgresql_database.url


@pytest.fixture
def mariadb_database() -> Iterator[MariaDBDatabase]:
    """A fresh database and user of this test's own on the shared MariaDB, dropped after."""
    with MariaDBDatabase() as database:
        yield database


@pytest.fixture
def mariadb_url(mariadb_database: MariaDBDatabase) -> str:
    """``mysql+pymysql://USER:PASSWORD@127.0.0.1:3306/NAME?charset=utf8mb4``, fresh."""
    return mariadb_database.url


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The test runs once per backend ``[database] connection`` supports, each fresh."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'alarm-relay.sqlite'}"
        return
    database: SharedDatabase = (
        PostgresDatabase() if request.param == "postgresql" else MariaDBDatabase())
    with database:
        yield database.url


@pytest.fixture
def redis_namespace() -> Iterator[RedisNamespace]:
    """A key namespace of this test's own on the shared Redis; its keys are deleted after."""
    with RedisNamespace() as namespace:
        yield namespace


@pytest.fixture
def coordination_url(redis_namespace: RedisNamespace) -> str:
    """``[coordination] backend_url``: the shared Redis, ``timeout=3``, this test's namespace."""
    return redis_namespace.url


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private Redis on a free port, for tests that stop, kill or restart it."""
    _require(REDIS_SERVER_BIN)
    with RedisServer() as server:
        yield server
