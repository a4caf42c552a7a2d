"""Benchmark: end-to-end latency, alert in -> alarm event received by a consumer on RabbitMQ.

The daemon runs as a process (``alarm-relay --config-file``, tools/harness/relay.py) against
a real Alertmanager and the shared RabbitMQ (unique exchange and topic); a consumer built
with oslo.messaging's public listener API runs in this process and timestamps each event with
``time.monotonic()``, the same clock the sender uses.

- bus floor (baseline): one event published through oslo.messaging (the relay's Notifier,
  confirmed) -> received by the same consumer, one at a time;
- webhook path: a webhook v4 body with one new alert POSTed to the daemon's /v1/alerts ->
  its alarm.firing event received; one at a time (the next POST after the event arrived),
  ``--webhook`` alerts (1,000); target p99 <= 50 ms;
- poll path: an alert POSTed to Alertmanager -> its event received, with
  ``[alertmanager] poll_interval`` ``--poll-interval`` (1 s); alerts posted at random moments
  (mean spacing ``--spacing``) so they land at random points of the poll cycle; target
  p99 <= poll interval + 100 ms.

    python benchmarks/bench_e2e.py [--webhook 1000] [--poll 200] [--poll-interval 1.0]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.common import log  # noqa: E402
from tools.harness.relay import RelayProcess  # noqa: E402
from tools.harness.services import Alertmanager, shared_transport_url  # noqa: E402


def bus_floor(rabbit: str, exchange: str, topic: str, workdir: Path,
              consumer: common.TimedConsumer, samples: int) -> dict:
    """Publish -> receive latency of the bus alone (the relay's Notifier, one at a time)."""
    from daemon.publish import Notifier
    from tests.functional.publish.helpers import alarm_event, relay_config

    conf = relay_config(workdir, rabbit, exchange=exchange, topic=topic,
                        publisher={"send_retry": 3})
    notifier = Notifier(conf)
    notifier.open()
    latencies, confirm = [], []
    try:
        for i in range(samples + 10):
            event = alarm_event(alarm_no=i, sequence=1, kind="firing")
            key = f"floor-{i}"
            event.payload["labels"]["bench_id"] = key
            began = time.monotonic()
            notifier.publish(event)
            confirmed = time.monotonic()
            arrived = consumer.collector.wait_key(key, 5.0)
            if i < 10 or arrived is None:  # warm-up
                continue
            latencies.append(arrived - began)
            confirm.append(confirmed - began)
    finally:
        notifier.close()
    return {"receive": common.latency_summary(latencies),
            "confirm": common.latency_summary(confirm)}


def webhook_path(relay: RelayProcess, consumer: common.TimedConsumer, count: int,
                 budget: float) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=10)
    latencies, responses, lost = [], [], 0
    deadline = time.monotonic() + budget
    warmup = 20
    try:
        for i in range(count + warmup):
            if time.monotonic() > deadline:
                log(f"webhook: time budget of {budget:.0f}s spent after {i} alerts")
                break
            body = json.dumps(common.webhook_body(i, "wh")).encode()
            key = f"wh-{i}"
            began = time.monotonic()
            conn.request("POST", "/v1/alerts", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            answered = time.monotonic()
            if resp.status != 200:
                raise RuntimeError(f"POST /v1/alerts: {resp.status}")
            arrived = consumer.collector.wait_key(key, 5.0)
            if arrived is None:
                lost += 1
                continue
            if i >= warmup:
                latencies.append(arrived - began)
                responses.append(answered - began)
    finally:
        conn.close()
    return {"alerts": len(latencies), "not_received_in_5s": lost,
            "latency": common.latency_summary(latencies),
            "response": common.latency_summary(responses)}


def poll_path(am: Alertmanager, consumer: common.TimedConsumer, count: int,
              spacing: float, poll_interval: float) -> dict:
    rnd = random.Random(8)
    sent: dict[str, float] = {}
    conn = http.client.HTTPConnection("127.0.0.1", am.port, timeout=10)
    try:
        for i in range(count):
            alert = common.api_alert(i, "poll", starts=dt.datetime.now(dt.UTC))
            key = f"poll-{i}"
            body = json.dumps([alert]).encode()
            began = time.monotonic()
            conn.request("POST", "/api/v2/alerts", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"POST /api/v2/alerts: {resp.status}")
            sent[key] = began
            time.sleep(rnd.uniform(0, 2 * spacing))
    finally:
        conn.close()
    deadline = time.monotonic() + poll_interval * 3 + 10
    while time.monotonic() < deadline:
        with consumer.collector.lock:
            if all(k in consumer.collector.arrived for k in sent):
                break
        time.sleep(0.05)
    with consumer.collector.lock:
        latencies = [consumer.collector.arrived[k] - t for k, t in sent.items()
                     if k in consumer.collector.arrived]
    return {"alerts": len(latencies), "not_received": len(sent) - len(latencies),
            "poll_interval_s": poll_interval, "latency": common.latency_summary(latencies)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhook", type=int, default=1000, help="webhook alerts")
    parser.add_argument("--poll", type=int, default=200, help="alerts through the poll path")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--spacing", type=float, default=0.15,
                        help="mean seconds between alerts posted to Alertmanager")
    parser.add_argument("--floor", type=int, default=200, help="bus-floor samples")
    parser.add_argument("--budget", type=float, default=120.0,
                        help="seconds the webhook phase may take at most")
    args = parser.parse_args(argv)

    rabbit = shared_transport_url()
    name = common.unique_name("bench-e2e")
    exchange, topic = f"{name}-x", name
    result: dict = {"benchmark": "e2e"}
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        workdir = Path(tmp)
        mapping = common.write_mapping(workdir)
        try:
            with Alertmanager(resolve_timeout="1h", workdir=workdir / "am") as am, \
                    common.TimedConsumer(rabbit, exchange=exchange, topic=topic,
                                         conf_dir=workdir) as consumer:
                relay = RelayProcess(
                    mapping_path=mapping, transport_url=rabbit, alertmanager_urls=[am.url],
                    workdir=workdir / "relay",
                    sections={
                        "DEFAULT": {"control_exchange": exchange},
                        "oslo_messaging_notifications": {"topics": topic},
                        "alertmanager": {"poll_interval": args.poll_interval},
                        # webhook alerts are not in Alertmanager: never resolve them here
                        "lifecycle": {"resolve_grace_period": 3600},
                    })
                with relay:
                    common.wait_for(lambda: relay.get("/readyz")[0] == 200, timeout=30,
                                    what="/readyz 200")
                    log("bus floor ...")
                    result["bus_floor"] = bus_floor(rabbit, exchange, topic, workdir,
                                                    consumer, args.floor)
                    log(f"bus floor: {result['bus_floor']}")
                    log("webhook path ...")
                    result["webhook"] = webhook_path(relay, consumer, args.webhook, args.budget)
                    log(f"webhook: {result['webhook']}")
                    log("poll path ...")
                    result["poll"] = poll_path(am, consumer, args.poll, args.spacing,
                                               args.poll_interval)
                    log(f"poll: {result['poll']}")
                    metrics = common.scrape(relay.url)
                    polls = common.metric_sum(metrics, "alarm_relay_poll_duration_seconds_count")
                    took = common.metric_sum(metrics, "alarm_relay_poll_duration_seconds_sum")
                    result["relay_polls"] = int(polls)
                    result["relay_mean_poll_ms"] = round(took / polls * 1000, 2) if polls else None
                    result["relay_rss_bytes"] = common.relay_worker_rss(relay.proc.pid)
        finally:
            common.delete_entities(rabbit, exchanges=[exchange], queues=[f"{topic}.info"])
    wh = result["webhook"]["latency"].get("p99_ms")
    pl = result["poll"]["latency"].get("p99_ms")
    result["webhook_target_p99_ms"] = 50.0
    result["poll_target_p99_ms"] = args.poll_interval * 1000 + 100
    result["webhook_target_met"] = wh is not None and wh <= 50.0
    result["poll_target_met"] = (pl is not None and result["poll"]["not_received"] == 0
                                 and pl <= result["poll_target_p99_ms"])
    result["target_met"] = result["webhook_target_met"] and result["poll_target_met"]
    common.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
