"""``alarm-relay-manage listen`` as the real console script, against the shared RabbitMQ."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time

import kombu
import pytest

from daemon.publish import Notifier
from tests.functional.publish.helpers import alarm_event, relay_config
from tools.harness.bus import delete_entities

MANAGE = pathlib.Path(sys.executable).with_name("alarm-relay-manage")
AMQP_SHARED = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def names(unique_name):
    exchange, topic, pool = f"{unique_name}-x", f"{unique_name}-alarms", f"{unique_name}-pool"
    yield exchange, topic, pool
    delete_entities(AMQP_SHARED, exchanges=[exchange], queues=[f"{topic}.info", pool])


def _listen(conf_file, *args):
    return subprocess.Popen([str(MANAGE), "--config-file", str(conf_file), "listen", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_consumer(queue, proc, timeout=30.0):
    """The listener is subscribed once its queue has a consumer."""
    deadline = time.monotonic() + timeout
    with kombu.Connection(AMQP_SHARED, connect_timeout=5) as conn:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            channel = conn.channel()
            try:
                if channel.queue_declare(queue, passive=True).consumer_count:
                    return
            except Exception:  # noqa: BLE001 - not there yet (the channel is closed)
                pass
            time.sleep(0.2)
    raise AssertionError(f"no consumer on {queue}")


def _conf_file(tmp_path):
    return next(tmp_path.glob("relay-*.conf"))


def test_listen_prints_events_as_json_lines(tmp_path, rabbit_url, names):
    exchange, topic, pool = names
    conf = relay_config(tmp_path, rabbit_url, exchange=exchange, topic=topic)
    events = [alarm_event(alarm_no=7, sequence=1, kind="firing"),
              alarm_event(alarm_no=7, sequence=2, kind="resolved", minute=3)]
    proc = _listen(_conf_file(tmp_path), "--topic", topic, "--pool", pool, "--count", "2")
    try:
        _wait_for_consumer(pool, proc)
        with Notifier(conf) as notifier:
            for event in events:
                notifier.publish(event)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["message_id"] for line in lines] == [e.event_id for e in events]
    for line, event in zip(lines, events, strict=True):
        assert line["payload"] == event.payload
        assert line["event_type"] == event.event_type
        assert line["publisher_id"] == "alarm-relay:relay-test"
        assert line["priority"] == "info"
        assert line["timestamp"]


def test_listen_filters_by_event_type_and_stops_on_sigterm(tmp_path, rabbit_url, names):
    exchange, topic, pool = names
    conf = relay_config(tmp_path, rabbit_url, exchange=exchange, topic=topic)
    firing = alarm_event(alarm_no=8, sequence=1, kind="firing")
    resolved = alarm_event(alarm_no=8, sequence=2, kind="resolved", minute=1)
    proc = _listen(_conf_file(tmp_path), "--topic", topic, "--pool", pool,
                   "--event-type", r"^alarm\.resolved$")
    try:
        _wait_for_consumer(pool, proc)
        with Notifier(conf) as notifier:
            notifier.publish(firing)
            notifier.publish(resolved)
        line = proc.stdout.readline()
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(line)["message_id"] == resolved.event_id
    assert out == ""


def test_listen_without_pool_uses_the_default_queue(tmp_path, rabbit_url, names):
    exchange, topic, _ = names
    conf = relay_config(tmp_path, rabbit_url, exchange=exchange, topic=topic)
    event = alarm_event(alarm_no=9, sequence=1, kind="firing")
    # Published before anyone listens: the default queue keeps it.
    with Notifier(conf) as notifier:
        notifier.publish(event)
    proc = _listen(_conf_file(tmp_path), "--count", "1")   # topic from the config
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out)["message_id"] == event.event_id
    assert "without a pool" in err
