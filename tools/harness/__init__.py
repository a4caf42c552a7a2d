"""Real services on free loopback ports for functional tests, benchmarks and the demo.

``services`` holds Alertmanager, Prometheus, the node exporter, Aetos and RabbitMQ;
``relay`` (the daemon as a process), ``keystone`` and ``watcher`` (Watcher 17 and the bridge
as a process) live beside it.
"""

from tools.harness.ports import free_port, free_ports, port_open, wait_until
from tools.harness.services import (
    SHARED_RABBIT_URL,
    Aetos,
    Alertmanager,
    AlertmanagerCluster,
    NodeExporter,
    Prometheus,
    RabbitNode,
    ScrapeTarget,
    Service,
    ServiceError,
    ensure_shared_rabbitmq,
    make_alert,
    shared_transport_url,
)

__all__ = [
    "SHARED_RABBIT_URL",
    "Aetos",
    "Alertmanager",
    "AlertmanagerCluster",
    "NodeExporter",
    "Prometheus",
    "RabbitNode",
    "ScrapeTarget",
    "Service",
    "ServiceError",
    "ensure_shared_rabbitmq",
    "free_port",
    "free_ports",
    "make_alert",
    "port_open",
    "shared_transport_url",
    "wait_until",
]
