"""A consumer of alarm events built only with oslo.messaging's public API.

Shared by functional tests and benchmarks: it is what a decision engine
writes (docs/consumers.md), with its own ConfigOpts as in another service.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kombu
from oslo_config import cfg

__all__ = ["Collector", "Consumer", "amqp_url", "delete_entities"]


class Collector:
    """A consumer endpoint, as Watcher or any service writes one (``info`` only)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[str, str, dict, dict]] = []
        self.changed = threading.Condition(self.lock)

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.changed:
            self.received.append((publisher_id, event_type, payload, metadata))
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.received) >= count, timeout)

    def event_ids(self) -> list[str]:
        with self.lock:
            return [p["event_id"] for _, _, p, _ in self.received]

    def payloads(self, event_type: str) -> list[dict]:
        """The payloads received so far of one event type, in order."""
        with self.lock:
            return [p for _, etype, p, _ in self.received if etype == event_type]


class Consumer:
    """A notification listener on ``topic`` of ``exchange`` (``amqp_durable_queues = True``,
    as docs/consumers.md tells consumers to set).

    :param endpoint: the listener's endpoint (default: a new :class:`Collector`,
        kept as ``self.collector``)
    :param threads: the listener's executor threads (oslo.messaging's default when None)
    """

    def __init__(self, transport_url: str, *, exchange: str, topic: str, conf_dir: Path,
                 pool: str | None = None, endpoint: Any = None,
                 threads: int | None = None) -> None:
        path = conf_dir / f"consumer-{uuid.uuid4().hex[:6]}.conf"
        pool_line = f"executor_thread_pool_size = {threads}\n" if threads else ""
        path.write_text(
            f"[DEFAULT]\ntransport_url = {transport_url}\ncontrol_exchange = {exchange}\n"
            f"{pool_line}"
            "[oslo_messaging_rabbit]\namqp_durable_queues = true\n"
            "rabbit_retry_interval = 1\nrabbit_interval_max = 1\n")
        import oslo_messaging  # after daemon chose the oslo.service backend

        self.conf = cfg.ConfigOpts()
        self.conf(["--config-file", str(path)], project="consumer", default_config_files=[])
        self.transport = oslo_messaging.get_notification_transport(self.conf)
        self.collector = endpoint if endpoint is not None else Collector()
        self.listener = oslo_messaging.get_notification_listener(
            self.transport, [oslo_messaging.Target(topic=topic)],
            [self.collector], executor="threading", pool=pool)

    def __enter__(self) -> Consumer:
        self.listener.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.stop()
        self.listener.wait()
        self.transport.cleanup()


def amqp_url(transport_url: str) -> str:
    """kombu URL of an oslo.messaging ``rabbit://`` URL."""
    url = transport_url.replace("rabbit://", "amqp://", 1)
    return url if url.endswith("//") else url.rstrip("/") + "//"


def delete_entities(url: str, *, exchanges: Iterable[str] = (),
                    queues: Iterable[str] = ()) -> None:
    """Remove a test's queues and exchanges from the broker (``rabbit://`` or ``amqp://``)."""
    with kombu.Connection(amqp_url(url), connect_timeout=5) as conn:
        channel = conn.channel()
        for queue in queues:
            channel.queue_delete(queue)
        for exchange in exchanges:
            channel.exchange_delete(exchange)
