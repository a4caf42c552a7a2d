"""The Watcher client against a small HTTP server answering what Watcher answers on a bad day.

The real Watcher (tests/functional/watcher/) cannot be made to answer 503 or 500 on cue;
this server can. It records each request's method, path, headers and body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from daemon import conf as relay_conf
from daemon.exception import WatcherError
from daemon.watcher.client import WatcherClient
from tools.harness.ports import free_port
from tools.harness.relay import write_config


def fault(text: str) -> dict:
    # Watcher's shape: error_message is a JSON string holding faultstring.
    return {"error_message": json.dumps({"faultcode": "Client", "faultstring": text,
                                         "debuginfo": None})}


class Stub(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[tuple[str, str], tuple[int, dict | None]] = {}
        self.requests: list[tuple[str, str, dict, dict | None]] = []


class Handler(BaseHTTPRequestHandler):
    server: Stub

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append((self.command, self.path, dict(self.headers), body))
        status, answer = self.server.routes.get((self.command, self.path), (404, fault("nope")))
        data = json.dumps(answer).encode() if answer is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def client_for(tmp_path, url: str, **watcher_client) -> WatcherClient:
    path = write_config(tmp_path / "bridge.conf", {
        "watcher_client": {"auth_mode": "noauth", "endpoint_override": url,
                           "timeout": 2, **watcher_client}})
    return WatcherClient(relay_conf.prepare(["--config-file", str(path)]))


def test_noauth_requests_carry_identity_and_microversion(tmp_path, stub):
    url = f"http://127.0.0.1:{stub.server_port}"
    stub.routes[("GET", "/v1/audit_templates/my-tpl")] = (200, {"uuid": "t-1"})
    client = client_for(tmp_path, url)
    assert client.check() == url
    assert client.template_uuid("my-tpl") == "t-1"
    _, _, headers, _ = stub.requests[0]
    assert headers["OpenStack-API-Version"] == "infra-optim 1.4"
    assert headers["X-Roles"] == "admin" and headers["X-Project-Id"] == "alarm-relay"


def test_create_trigger_and_conflict(tmp_path, stub):
    stub.routes[("POST", "/v1/audits")] = (201, {"uuid": "a-1", "name": "n", "state": "PENDING"})
    stub.routes[("POST", "/v1/webhooks/a-1")] = (202, None)
    client = client_for(tmp_path, f"http://127.0.0.1:{stub.server_port}")
    audit = client.create_audit(name="n", template_uuid="t-1", parameters={"host": "h"})
    assert (audit.uuid, audit.state) == ("a-1", "PENDING")
    client.trigger("a-1", {"alarm_id": "x"})
    assert stub.requests[0][3] == {"name": "n", "audit_type": "EVENT",
                                   "audit_template_uuid": "t-1", "parameters": {"host": "h"}}
    assert stub.requests[1][3] == {"alarm_id": "x"}
    # 409: made by an earlier attempt; the client returns that audit.
    stub.routes[("POST", "/v1/audits")] = (409, fault("An audit with UUID or name n exists"))
    stub.routes[("GET", "/v1/audits/n")] = (200, {"uuid": "a-1", "name": "n",
                                                  "state": "SUCCEEDED"})
    assert client.create_audit(name="n", template_uuid="t-1", parameters={}).state == \
        "SUCCEEDED"


@pytest.mark.parametrize(("status", "recoverable", "reason"), [
    (500, True, "server_error"), (503, True, "server_error"), (429, True, "server_error"),
    (401, True, "unauthorized"), (403, True, "forbidden"),
    (400, False, "refused"), (404, False, "refused"),
])
def test_answers_are_classified(tmp_path, stub, status, recoverable, reason):
    answer = fault("Audit state ONGOING is not allowed")
    stub.routes[("POST", "/v1/webhooks/a-1")] = (status, answer)
    client = client_for(tmp_path, f"http://127.0.0.1:{stub.server_port}")
    with pytest.raises(WatcherError) as info:
        client.trigger("a-1", {})
    assert (info.value.recoverable, info.value.reason) == (recoverable, reason)
    assert "Audit state ONGOING is not allowed" in str(info.value)


def test_a_missing_template_is_a_permanent_refusal(tmp_path, stub):
    client = client_for(tmp_path, f"http://127.0.0.1:{stub.server_port}")
    with pytest.raises(WatcherError) as info:
        client.template_uuid("absent")
    assert (info.value.recoverable, info.value.reason) == (False, "template_not_found")
    assert str(info.value) == "watcher: audit template 'absent' not found in Watcher"
    assert client.find_audit("absent") is None


def test_watcher_down_is_recoverable(tmp_path):
    client = client_for(tmp_path, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(WatcherError) as info:
        client.find_audit("x")
    assert (info.value.recoverable, info.value.reason) == (True, "unreachable")
    assert "cannot reach http://127.0.0.1:" in str(info.value)


def test_keystone_mode_without_credentials_names_the_group(tmp_path):
    path = write_config(tmp_path / "bridge.conf", {"watcher_client": {}})
    client = WatcherClient(relay_conf.prepare(["--config-file", str(path)]))
    with pytest.raises(WatcherError) as info:
        client.check()
    assert not info.value.recoverable
    assert "[service_credentials] auth_type is not set" in str(info.value)
