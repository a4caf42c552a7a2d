"""Notifier: the message a normal oslo.messaging Notifier would send, failures raised."""

from __future__ import annotations

import threading
import uuid

import oslo_messaging
import pytest

from daemon import conf as relay_conf
from daemon import exception
from daemon.publish.notifier import Notifier
from tests.unit.publish.conftest import make_event


def _conf(tmp_path, **sections):
    """A relay config from an INI file, as the daemon reads it."""
    sections.setdefault("DEFAULT", {})
    sections["DEFAULT"].setdefault("transport_url", "fake:/")
    sections["DEFAULT"].setdefault("host", "relay-host-1")
    sections["DEFAULT"].setdefault("control_exchange", f"unit-{uuid.uuid4().hex[:8]}")
    lines = []
    for name, options in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {value}" for key, value in options.items())
    path = tmp_path / "relay.conf"
    path.write_text("\n".join(lines) + "\n")
    return relay_conf.prepare(["--config-file", str(path)])


class _Endpoint:
    def __init__(self):
        self.received = []
        self.done = threading.Event()
        self.expected = 1

    def _record(self, priority, ctxt, publisher_id, event_type, payload, metadata):
        self.received.append((priority, ctxt, publisher_id, event_type, payload, metadata))
        if len(self.received) >= self.expected:
            self.done.set()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record("info", ctxt, publisher_id, event_type, payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._record("error", ctxt, publisher_id, event_type, payload, metadata)


def _listen(notifier, conf, endpoint, topics=("alarms",)):
    listener = oslo_messaging.get_notification_listener(
        notifier._transport, [oslo_messaging.Target(topic=t) for t in topics],
        [endpoint], executor="threading")
    listener.start()
    return listener


def _stop(listener):
    listener.stop()
    listener.wait()


def test_listener_receives_what_a_notifier_would_send(tmp_path):
    conf = _conf(tmp_path)
    endpoint = _Endpoint()
    with Notifier(conf) as notifier:
        listener = _listen(notifier, conf, endpoint)
        try:
            event = make_event(severity="warning")
            notifier.publish(event)
            assert endpoint.done.wait(10)
        finally:
            _stop(listener)
    ((priority, ctxt, publisher_id, event_type, payload, metadata),) = endpoint.received
    assert priority == "info"
    assert ctxt == {}
    assert publisher_id == "alarm-relay:relay-host-1"
    assert event_type == "alarm.firing"
    assert payload == event.payload
    assert metadata["message_id"] == event.event_id
    assert metadata["timestamp"]  # str(utcnow()), as oslo's Notifier sends it


def test_same_message_as_oslo_notifier(tmp_path):
    """Compare field by field with what oslo_messaging.Notifier hands its driver."""
    conf = _conf(tmp_path)
    sent = []
    with Notifier(conf) as notifier:
        real = oslo_messaging.Notifier(notifier._transport, publisher_id="alarm-relay:relay-host-1",
                                       driver="messagingv2", topics=["alarms"])
        original = notifier._transport._send_notification

        def capture(target, ctxt, message, version, retry=None):
            sent.append((target.topic, ctxt, dict(message), version, retry))
            return original(target, ctxt, message, version, retry=retry)

        notifier._transport._send_notification = capture
        event = make_event()
        real.info({}, event.event_type, event.payload)
        notifier.publish(event)
    (theirs, ours) = sent
    assert ours[0] == theirs[0] == "alarms.info"
    assert ours[1] == theirs[1] == {}
    assert ours[3] == theirs[3] == 2.0
    assert set(ours[2]) == set(theirs[2])
    for key in ("publisher_id", "event_type", "priority", "payload"):
        assert ours[2][key] == theirs[2][key]
    assert ours[2]["message_id"] == event.event_id
    assert ours[4] == conf.publisher.send_retry >= 0


def test_severity_priority_and_topics(tmp_path):
    conf = _conf(tmp_path, oslo_messaging_notifications={"topics": "alarms,ops"},
                 publisher={"severity_priority": "critical:error"})
    endpoint = _Endpoint()
    endpoint.expected = 4
    with Notifier(conf) as notifier:
        listener = _listen(notifier, conf, endpoint, topics=("alarms", "ops"))
        try:
            notifier.publish(make_event(severity="critical"))
            notifier.publish(make_event(severity="minor"))
            assert endpoint.done.wait(10)
        finally:
            _stop(listener)
    priorities = sorted(r[0] for r in endpoint.received)
    assert priorities == ["error", "error", "info", "info"]


def test_failure_raises_recoverable(tmp_path, monkeypatch):
    conf = _conf(tmp_path, DEFAULT={
        "transport_url": "fake://guest:pa55word@127.0.0.1:1/"})
    with Notifier(conf) as notifier:
        def fail(*args, **kwargs):
            raise oslo_messaging.MessageDeliveryFailure(
                "Unable to connect to AMQP server on 127.0.0.1:1 pa55word after 3 tries")

        monkeypatch.setattr(notifier._transport, "_send_notification", fail)
        with pytest.raises(exception.PublishError) as caught:
            notifier.publish(make_event())
    assert caught.value.recoverable is True
    assert "pa55word" not in str(caught.value)
    assert isinstance(caught.value.__cause__, oslo_messaging.MessageDeliveryFailure)


def test_scrub_hides_the_password_before_open_too(tmp_path):
    """The publishing child reports a notifier that did not open with this text."""
    conf = _conf(tmp_path, DEFAULT={"transport_url": "fake://guest:pa55word@127.0.0.1:1/"})
    text = "ValueError: bad URL fake://guest:pa55word@127.0.0.1:1/"
    assert Notifier(conf).scrub(text) == "ValueError: bad URL fake://guest:***@127.0.0.1:1/"


def test_unknown_errors_are_recoverable(tmp_path, monkeypatch):
    conf = _conf(tmp_path)
    with Notifier(conf) as notifier:
        def fail(*args, **kwargs):
            raise ValueError("I/O operation on closed file")

        monkeypatch.setattr(notifier._transport, "_send_notification", fail)
        with pytest.raises(exception.PublishError) as caught:
            notifier.publish(make_event())
    assert caught.value.recoverable is True


def test_unencodable_payload_is_not_recoverable(tmp_path):
    conf = _conf(tmp_path)
    with Notifier(conf) as notifier:
        event = make_event()
        event.payload["bad"] = object()  # no JSON for it
        with pytest.raises(exception.PublishError) as caught:
            notifier.publish(event)
    assert caught.value.recoverable is False


def test_retry_forever_is_refused(tmp_path):
    conf = _conf(tmp_path)
    # Overrides on a module-level OptGroup are shared by every ConfigOpts of the
    # process (oslo.config copies the group shallowly): undo it.
    conf.set_override("send_retry", None, group="publisher")
    try:
        with pytest.raises(exception.ConfigError, match="send_retry"):
            Notifier(conf).open()
    finally:
        conf.clear_override("send_retry", group="publisher")


@pytest.mark.parametrize("driver", ["noop", "log", ""])
def test_dropping_drivers_are_refused(tmp_path, driver):
    conf = _conf(tmp_path, oslo_messaging_notifications={"driver": driver})
    with pytest.raises(exception.ConfigError, match="driver"):
        Notifier(conf).open()


def test_bad_priority_is_refused(tmp_path):
    conf = _conf(tmp_path, publisher={"severity_priority": "critical:loud"})
    with pytest.raises(exception.ConfigError, match="severity_priority"):
        Notifier(conf).open()


def test_publish_before_open_raises(tmp_path):
    with pytest.raises(exception.PublishError):
        Notifier(_conf(tmp_path)).publish(make_event())
