"""The publishing child processes' sender, where no broker is needed (issue 16)."""

from __future__ import annotations

import pytest

from daemon import conf as relay_conf
from daemon import exception
from daemon.publish.child import build_conf
from daemon.publish.process import ProcessSender, notifier_options
from tests.unit.publish.conftest import make_event


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "relay.conf"
    path.write_text(
        "[DEFAULT]\n"
        "transport_url = rabbit://relay:s3cret@127.0.0.1:5672/\n"
        "control_exchange = alarms-x\n"
        "host = controller-2\n"
        "debug = true\n"
        "[oslo_messaging_notifications]\n"
        "topics = alarms,audit\n"
        "[oslo_messaging_rabbit]\n"
        "ssl = true\n"
        "heartbeat_timeout_threshold = 30\n"
        "[publisher]\n"
        "send_retry = 5\n"
        "severity_priority = critical:error\n")
    return relay_conf.prepare(["--config-file", str(path)])


def test_the_child_gets_the_options_the_worker_read(conf):
    child = build_conf(notifier_options(conf))
    assert child.transport_url == "rabbit://relay:s3cret@127.0.0.1:5672/"
    assert child.control_exchange == "alarms-x"
    assert child.host == "controller-2"
    assert child.debug is True
    assert child.oslo_messaging_notifications.topics == ["alarms", "audit"]
    assert child.oslo_messaging_notifications.driver == ["messagingv2"]
    assert child.oslo_messaging_rabbit.ssl is True
    assert child.oslo_messaging_rabbit.heartbeat_timeout_threshold == 30
    assert child.publisher.send_retry == 5
    assert child.publisher.severity_priority == {"critical": "error"}


def test_a_child_that_cannot_start_fails_its_jobs_as_recoverable(conf):
    sender = ProcessSender(conf, processes=1, threads=2, restart_delay=0.05,
                           python="/nonexistent/python3")
    sender.open()
    try:
        sent, err = sender.submit([make_event("alarm-1")]).result(timeout=10)
    finally:
        sender.close(timeout=5)
    assert sent == 0
    assert isinstance(err, exception.PublishError) and err.recoverable
    assert "cannot start" in str(err) and "/nonexistent/python3" in str(err)
    assert sender.pids == []


def test_jobs_after_close_fail_as_recoverable(conf):
    sender = ProcessSender(conf, processes=1, threads=2, python="/nonexistent/python3")
    sender.open()
    sender.close(timeout=5)
    sent, err = sender.submit([make_event("alarm-1")]).result(timeout=1)
    assert sent == 0 and err.recoverable
    assert "stopped" in str(err)
