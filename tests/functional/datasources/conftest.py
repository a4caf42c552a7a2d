"""One real metrics stack for this folder: node exporter -> Prometheus -> Aetos (noauth and
keystone mode) -> Keystone, shared by its tests (package scope) because Keystone takes
tens of seconds to bootstrap.

The node exporter carries the ``fqdn`` target label and a libvirt-like textfile series
``libvirt_domain_info{domain, resource}`` so that both ``fqdn_label`` and
``instance_uuid_label`` exist, as on a compute node.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.harness import services
from tools.harness.keystone import Keystone
from tools.harness.services import Aetos, NodeExporter, Prometheus, ScrapeTarget

FQDN = "compute-1.example.org"
DOMAIN = "instance-00000004"
UUID = "6f2b1c9e-0d4a-4e7b-9a51-3c2e8f1d7a10"
RELAY_USER, RELAY_PASSWORD = "alarm-relay", "relay-secret"
READER_USER, READER_PASSWORD = "alarm-relay-reader", "reader-secret"
PROJECT = "service"
SHARED_MAPPING = (Path(__file__).resolve().parents[3].parent / "shared" / "fixtures"
                  / "mapping" / "seed-mapping.yaml")


@dataclasses.dataclass
class Stack:
    exporter: NodeExporter
    prometheus: Prometheus
    aetos: Aetos                 # noauth
    keystone: Keystone
    aetos_ks: Aetos              # keystone mode, registered as metric-storage
    endpoints: dict[str, str]
    timings: dict[str, float]

    def register_aetos(self) -> None:
        self.endpoints = self.keystone.register_service(
            "metric-storage", self.aetos_ks.url, name="aetos")


@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    for binary in (services.PROMETHEUS_BIN, services.NODE_EXPORTER_BIN):
        if not Path(binary).exists():
            pytest.fail(f"{binary} is missing: run `make services`")
    started = []
    try:
        timings: dict[str, float] = {}
        began = time.monotonic()
        keystone = Keystone()
        started.append(keystone)
        keystone.start()
        timings["keystone_start"] = time.monotonic() - began
        timings["keystone_bootstrap"] = keystone.bootstrapped_in or 0.0
        keystone.user(RELAY_USER, RELAY_PASSWORD, project=PROJECT, roles=["admin"])
        keystone.user(READER_USER, READER_PASSWORD, project=PROJECT, roles=["reader"])

        exporter = NodeExporter()
        started.append(exporter)
        exporter.start()
        exporter.set_metric("libvirt_domain_info", 1, {"domain": DOMAIN, "resource": UUID})
        prometheus = Prometheus(targets=[ScrapeTarget(exporter.address, {"fqdn": FQDN})])
        started.append(prometheus)
        prometheus.start()
        prometheus.wait_for_series(f'libvirt_domain_info{{fqdn="{FQDN}"}}')
        aetos = Aetos(prometheus=prometheus)
        started.append(aetos)
        aetos.start()
        aetos_ks = Aetos(prometheus=prometheus, auth_mode="keystone",
                         env=keystone.authtoken_env())
        started.append(aetos_ks)
        aetos_ks.start()
        result = Stack(exporter, prometheus, aetos, keystone, aetos_ks, {}, timings)
        result.register_aetos()
        yield result
    finally:
        for service in reversed(started):
            service.close()
