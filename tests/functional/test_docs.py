"""Every shell command in README.md and docs/ is either run here, as written, or on a reviewed
list of commands that cannot run on a test machine, with the reason (issue 7, must-show 4).

How commands are found: the fenced code blocks whose info string is ``sh``, ``bash``,
``shell`` or ``console`` (other blocks - ``ini``, ``yaml``, plain output - are not commands).
In ``sh``/``bash``/``shell`` blocks every line is a command, after joining ``\\``
continuations and dropping ``#`` comments; in ``console`` blocks only lines starting with the
prompt ``$`` are. Whitespace is normalised; nothing else is changed.

A command is **run** when one of the ``RUNNERS`` patterns matches it. It runs in ``bash``
exactly as written except for the site values of ``SUBSTITUTIONS``, against real services on
loopback: a running alarm-relay (the daemon's console script) with Alertmanager, Prometheus,
a node exporter, Aetos (noauth) and the shared RabbitMQ (its own exchange and topic), and an
alarm-relay-watcher with the sample rules (for its /metrics).

Substitutions (site value in the docs -> what the test uses):

==============================================  ==================================================
``/etc/alarm-relay/alarm-relay.conf``           the config file of the test's running relay
``/etc/alarm-relay/mappings.yaml``,             the relay's mapping file (a copy of
bare ``mappings.yaml``                          ``etc/alarm-relay/mappings.yaml``, or the demo's)
bare ``alerts.json``                            ``etc/alarm-relay/demo/alerts.json`` (the seed's)
``127.0.0.1:9097``, ``localhost:9097``,         the relay's listener (a free loopback port)
``relay-host:9097``
``127.0.0.1:9098``                              the /metrics of a running alarm-relay-watcher
``$USER``                                       a unique name (it names a listen pool)
==============================================  ==================================================

A command is **not run** when it is in ``NOT_RUN`` (exact text -> reason). The repository
paths such a command names must still exist.

The test fails when a document gains a command that is in neither (review it: make it run
here, or add it to ``NOT_RUN`` with the reason), and when a ``NOT_RUN`` entry no longer
appears in any document. ``make genconfig`` is run as its underlying command (no ``make``
inside tests).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import kombu
import pytest

from daemon.publish.notifier import PRIORITIES
from tools.harness.ports import free_port
from tools.harness.relay import RelayProcess
from tools.harness.services import (
    SHARED_RABBIT_URL,
    Aetos,
    Alertmanager,
    NodeExporter,
    Prometheus,
    ScrapeTarget,
    ensure_shared_rabbitmq,
    make_alert,
)
from tools.harness.watcher import BridgeProcess

REPO = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent
AMQP_SHARED = SHARED_RABBIT_URL.replace("rabbit://", "amqp://").rstrip("/") + "//"
FQDN = "compute-1.example.org"
SHELL_LANGS = frozenset({"sh", "bash", "shell", "console"})
RUN_TIMEOUT = 60.0


def documents() -> list[pathlib.Path]:
    """README.md and every Markdown file under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


# --------------------------------------------------------------------------- extraction


@dataclasses.dataclass(frozen=True)
class DocCommand:
    path: str  # repo-relative
    line: int  # 1-based line of the command's first line
    text: str  # normalised command

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")


def _strip_comment(line: str) -> str:
    """Drop an unquoted ``#`` comment (``#`` at the start or after whitespace)."""
    quote = None
    escaped = False
    for i, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _normalise(text: str) -> str:
    return " ".join(text.split())


def extract_commands(path: pathlib.Path) -> list[DocCommand]:
    """The shell commands of one Markdown file (see the module docstring)."""
    rel = path.relative_to(REPO).as_posix()
    lines = path.read_text().splitlines()
    commands: list[DocCommand] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, lang = opening["fence"], opening["info"].lower()
        body: list[tuple[int, str]] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append((i + 1, lines[i]))
            i += 1
        i += 1  # the closing fence
        if lang not in SHELL_LANGS:
            continue
        pending: list[str] = []
        start = 0
        for number, raw in body:
            if lang == "console" and not pending:
                stripped = raw.strip()
                if not stripped.startswith("$"):
                    continue  # output, not a command
                raw = stripped[1:]
            text = _strip_comment(raw)
            if not pending:
                start = number
            if text.rstrip().endswith("\\"):
                pending.append(text.rstrip()[:-1])
                continue
            pending.append(text)
            command = _normalise(" ".join(pending))
            pending = []
            if command:
                commands.append(DocCommand(rel, start, command))
    return commands


def all_commands() -> list[DocCommand]:
    return [cmd for doc in documents() for cmd in extract_commands(doc)]


# --------------------------------------------------------------------------- the reviewed lists

_SYSTEMD = "needs systemd as PID 1 and root; changes the machine's services"
_ROOT_INSTALL = "installs into the system (/etc, /usr, /opt, users) as root"

#: Commands that are not run, exactly as the documents write them, with the reason.
NOT_RUN: dict[str, str] = {
    "make demo": "runs make; tests/functional/test_demo.py runs tools/demo.py, what it runs",
    "make test": "runs make; it is this test suite (unit + functional)",
    "pip install .": "installs the project into the current environment (minutes); the test "
                     "venv is made the same way by tools/make-venv.sh",
    "python3 -m venv /opt/alarm-relay && /opt/alarm-relay/bin/pip install "
    "/path/to/alarm-relay": _ROOT_INSTALL + " (and takes minutes)",
    "ln -s /opt/alarm-relay/bin/alarm-relay /opt/alarm-relay/bin/alarm-relay-manage "
    "/usr/bin/": _ROOT_INSTALL,
    "useradd --system --home-dir /var/lib/alarm-relay --shell /usr/sbin/nologin alarm-relay":
        _ROOT_INSTALL,
    "install -d -m 0755 /etc/alarm-relay": _ROOT_INSTALL,
    "install -m 0640 -g alarm-relay etc/alarm-relay/alarm-relay.conf.sample "
    "/etc/alarm-relay/alarm-relay.conf": _ROOT_INSTALL,
    "install -m 0644 etc/alarm-relay/mappings.yaml /etc/alarm-relay/mappings.yaml":
        _ROOT_INSTALL,
    "install -m 0644 systemd/alarm-relay.service /etc/systemd/system/alarm-relay.service":
        _ROOT_INSTALL + "; tests/unit/test_systemd_unit.py verifies the unit",
    "systemctl daemon-reload && systemctl enable --now alarm-relay": _SYSTEMD,
    "systemctl daemon-reload": _SYSTEMD,
    "systemctl enable --now alarm-relay": _SYSTEMD,
    "journalctl -u alarm-relay -b": "reads the journal of the systemd unit (not installed here)",
    "journalctl -u alarm-relay -f": "reads the journal of the systemd unit (not installed here)",
    "journalctl -u alarm-relay --since -1h -p warning":
        "reads the journal of the systemd unit (not installed here)",
    "openstack optimize audittemplate create host-maintenance cluster_maintaining "
    "--strategy host_maintenance":
        "needs a cloud with python-watcherclient; tools/harness/watcher.py creates the tests' "
        "audit templates through Watcher's REST API",
    "openstack role add --user alarm-relay --project service admin":
        "needs a cloud with python-openstackclient; tools/harness/keystone.py assigns roles "
        "through Keystone's REST API",
    "install -m 0644 etc/alarm-relay/watcher-rules.yaml /etc/alarm-relay/watcher-rules.yaml":
        _ROOT_INSTALL + "; tests/unit/watcher/test_sample_rules.py loads the file",
    "install -m 0644 systemd/alarm-relay-watcher.service "
    "/etc/systemd/system/alarm-relay-watcher.service":
        _ROOT_INSTALL + "; tests/unit/test_systemd_unit.py verifies the unit",
    "systemctl daemon-reload && systemctl enable --now alarm-relay-watcher": _SYSTEMD,
    "journalctl -u alarm-relay-watcher -f":
        "reads the journal of the systemd unit (not installed here)",
    "alarm-relay-manage db copy --from sqlite:////var/lib/alarm-relay/alarm-relay.sqlite "
    "--to postgresql+psycopg2://alarm_relay:SECRET@db-vip/alarm_relay":
        "needs the operator's state file and shared database; "
        "tests/functional/store/test_daemon_database.py runs db copy from a relay's file to "
        "PostgreSQL and starts a daemon on the copy",
    "rabbitmqctl delete_queue watcher-bridge":
        "deletes a queue of the machine's shared broker; the tests delete theirs with kombu",
}


# --------------------------------------------------------------------------- runners

#: Site values of the documents -> keys of ``Site`` (applied in this order).
SUBSTITUTIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/etc/alarm-relay/alarm-relay\.conf\b"), "config"),
    (re.compile(r"/etc/alarm-relay/mappings\.yaml\b"), "mapping"),
    (re.compile(r"(?<![\w/.-])mappings\.yaml\b"), "mapping"),
    (re.compile(r"(?<![\w/.-])alerts\.json\b"), "alerts"),
    (re.compile(r"\b(?:127\.0\.0\.1|localhost|relay-host):9097\b"), "relay_address"),
    (re.compile(r"\b127\.0\.0\.1:9098\b"), "bridge_address"),
]


@dataclasses.dataclass
class Site:
    """The test machine's values for the documents' site values, and its services."""

    config: str
    mapping: str
    alerts: str
    relay_address: str
    bridge_address: str
    user: str
    relay: RelayProcess
    alertmanager: Alertmanager

    def substitute(self, command: str) -> str:
        for pattern, key in SUBSTITUTIONS:
            command = pattern.sub(getattr(self, key), command)
        return command

    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "USER": self.user, "PYTHONUNBUFFERED": "1"}


def _bash(site: Site, command: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=REPO, env=site.env(), text=True,
                          capture_output=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)


def _expect_success(site: Site, command: str, *, contains: str | None = None) -> None:
    proc = _bash(site, command)
    detail = f"$ {command}\nexit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    assert proc.returncode == 0, detail
    assert proc.stdout.strip(), detail
    if contains is not None:
        assert contains in proc.stdout, detail


def run_validate(site: Site, command: str) -> None:
    _expect_success(site, command, contains="valid")


def run_mapping_test(site: Site, command: str) -> None:
    _expect_success(site, command, contains="rule:")


def run_check(site: Site, command: str) -> None:
    proc = _bash(site, command)
    detail = f"$ {command}\nexit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    assert proc.returncode == 0, detail
    assert "OK mapping" in proc.stdout and "OK rabbitmq" in proc.stdout, detail
    assert "FAIL" not in proc.stdout, detail


def run_db(site: Site, command: str) -> None:
    """On the running relay's embedded file: already current."""
    _expect_success(site, command, contains="current")


def run_curl(site: Site, command: str) -> None:
    _expect_success(site, command)


def run_listen(site: Site, command: str) -> None:
    """Start it, make alarms fire until it prints one, stop it with SIGTERM (exit 0)."""
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=REPO, env=site.env(),
                            text=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    lines: list[str] = []
    got = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            got.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not got.wait(2.0):
            assert proc.poll() is None, f"$ {command}\nexited: {proc.communicate()}"
            assert time.monotonic() < deadline, f"$ {command}\nprinted no event"
            # A new alarm each time: with a pool of its own, the listener gets only events
            # published after it subscribed.
            site.alertmanager.post_alerts([make_alert(
                f"DocsListen{uuid.uuid4().hex[:6]}", {"job": "node", "severity": "info"})])
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=5)
    stderr = proc.stderr.read()
    assert proc.returncode == 0, f"$ {command}\nexit {proc.returncode}\n{stderr}"
    event = json.loads(lines[0])
    assert event["event_type"].startswith("alarm."), lines[0]
    assert event["payload"]["alarm_id"], lines[0]


_MANAGE = r"alarm-relay-manage(?: --config-file \S+)?"
#: (pattern over the normalised command as written, runner)
RUNNERS: list[tuple[re.Pattern[str], Callable[[Site, str], None]]] = [
    (re.compile(rf"^{_MANAGE} mapping validate \S+$"), run_validate),
    (re.compile(rf"^{_MANAGE} mapping test \S+ \S+$"), run_mapping_test),
    (re.compile(r"^alarm-relay-manage --config-file \S+ check$"), run_check),
    (re.compile(r"^alarm-relay-manage --config-file \S+ db (?:sync|version)$"), run_db),
    (re.compile(r"^alarm-relay-manage --config-file \S+ listen(?: --\S+ \S+)*$"), run_listen),
    (re.compile(r"^curl -s http://\S+:9097/\S*(?: \| grep \S+)?$"), run_curl),
    (re.compile(r"^curl -s http://127\.0\.0\.1:9098/metrics \| grep \S+$"), run_curl),
]


def runner_for(command: str) -> Callable[[Site, str], None] | None:
    for pattern, runner in RUNNERS:
        if pattern.match(command):
            return runner
    return None


COMMANDS = all_commands()
RUNNABLE = [cmd for cmd in COMMANDS if runner_for(cmd.text) is not None]


# --------------------------------------------------------------------------- static checks


def test_extraction_finds_the_documents_commands():
    texts = {cmd.text for cmd in COMMANDS}
    # A command from each kind of block the documents use, so a broken parser cannot pass
    # by finding nothing.
    assert "make demo" in texts
    assert any(t.startswith("curl -s http://127.0.0.1:9097/") for t in texts)
    assert all("#" not in t for t in texts), [t for t in texts if "#" in t]


def test_parser_handles_console_continuations_and_comments(tmp_path, monkeypatch):
    doc = tmp_path / "x.md"
    doc.write_text("```console\n$ alarm-relay-manage check \\\n    --x y   # c\noutput\n```\n"
                   "```ini\n[a]\nb = c\n```\n```bash\n# only a comment\n"
                   "echo 'a # b' # comment\n```\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert [c.text for c in extract_commands(doc)] == [
        "alarm-relay-manage check --x y", "echo 'a # b'"]


def test_every_documented_command_is_run_or_reviewed():
    unreviewed = [f"{cmd.where}: {cmd.text}" for cmd in COMMANDS
                  if runner_for(cmd.text) is None and cmd.text not in NOT_RUN]
    assert not unreviewed, (
        "documented shell commands that are neither run by tests/functional/test_docs.py "
        "nor on its reviewed NOT_RUN list (make them run - see RUNNERS - or add them to "
        "NOT_RUN with the reason):\n  " + "\n  ".join(unreviewed))


def test_not_run_list_has_no_stale_entries():
    texts = {cmd.text for cmd in COMMANDS}
    stale = [text for text in NOT_RUN if text not in texts]
    assert not stale, f"NOT_RUN entries no document contains any more: {stale}"


def test_files_named_by_commands_not_run_exist():
    """An install command is not run, but the repository file it installs must be there."""
    missing = []
    for cmd in COMMANDS:
        if cmd.text not in NOT_RUN:
            continue
        for word in shlex.split(cmd.text):
            if re.match(r"^(etc|systemd|tools|docs)/", word) and not (REPO / word).exists():
                missing.append(f"{cmd.where}: {word}")
    assert not missing, f"commands name files the repository does not have: {missing}"


# --------------------------------------------------------------------------- run them


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A running relay with every service it talks to, on loopback."""
    ensure_shared_rabbitmq()
    tmp = tmp_path_factory.mktemp("docs")
    name = f"relaytest-docs-{uuid.uuid4().hex[:10]}"
    sample = REPO / "etc" / "alarm-relay" / "mappings.yaml"
    source = sample if sample.exists() else REPO / "etc" / "alarm-relay" / "demo" / "mappings.yaml"
    mapping = tmp / "mappings.yaml"
    mapping.write_text(source.read_text())
    started: list = []
    relay = RelayProcess(
        mapping_path=mapping, transport_url=SHARED_RABBIT_URL, alertmanager_urls=[],
        workdir=tmp / "relay",
        sections={"DEFAULT": {"control_exchange": name},
                  "oslo_messaging_notifications": {"topics": name}})
    try:
        exporter = NodeExporter().start()
        started.append(exporter)
        # The label the instance lookups use ([aetos_client] instance_uuid_label), as a
        # libvirt exporter would expose it.
        exporter.set_metric("libvirt_domain_info_state", 1,
                            {"domain": "instance-00000004",
                             "resource": "0f6a1c2e-6c7b-4a55-9f2a-8b1d2c3e4f50"})
        prometheus = Prometheus(targets=[ScrapeTarget(exporter.address, {"fqdn": FQDN})])
        started.append(prometheus.start())
        prometheus.wait_for_series(f'libvirt_domain_info_state{{fqdn="{FQDN}"}}')
        aetos = Aetos(prometheus=prometheus)
        started.append(aetos.start())
        alertmanager = Alertmanager(webhook_url=f"{relay.url}/v1/alerts")
        started.append(alertmanager.start())
        relay.rewrite_config({
            "alertmanager": {"urls": [alertmanager.url]},
            "datasources": {"metrics": "aetos"},
            "aetos_client": {"endpoint_override": aetos.url, "auth_mode": "noauth"},
        })
        relay.start()
        # alarm-relay-watcher with the sample rules, for its /metrics; Watcher is not
        # needed for that (a closed port: the bridge starts and would retry).
        bridge = BridgeProcess(
            transport_url=SHARED_RABBIT_URL, exchange=name, topic=name, pool=f"{name}-bridge",
            rules=(REPO / "etc" / "alarm-relay" / "watcher-rules.yaml").read_text(),
            watcher=None, workdir=tmp / "bridge",
            sections={"watcher_client": {"auth_mode": "noauth",
                                         "endpoint_override": f"http://127.0.0.1:{free_port()}"}})
        started.append(bridge)
        bridge.start()
        deadline = time.monotonic() + 30
        while relay.get("/readyz")[0] != 200:
            assert time.monotonic() < deadline, relay.get("/readyz")
            time.sleep(0.2)
        user = f"docs-{uuid.uuid4().hex[:8]}"
        yield Site(config=str(relay.config_path), mapping=str(mapping),
                   alerts=str(REPO / "etc" / "alarm-relay" / "demo" / "alerts.json"),
                   relay_address=f"127.0.0.1:{relay.port}",
                   bridge_address=f"127.0.0.1:{bridge.metrics_port}", user=user, relay=relay,
                   alertmanager=alertmanager)
    finally:
        if relay.proc is not None:
            try:
                relay.stop()
            except Exception:  # noqa: BLE001 - stop by force then
                relay.kill()
        for service in reversed(started):
            service.close()
        with kombu.Connection(AMQP_SHARED, connect_timeout=5) as conn:
            channel = conn.channel()
            # `alarm-relay-manage listen` declares a queue for every priority.
            queues = [f"{name}.{priority}" for priority in PRIORITIES] + [f"{name}-bridge"]
            if "user" in locals():
                queues.append(f"debug-{user}")
            for queue in queues:
                channel.queue_delete(queue)
            channel.exchange_delete(name)


@pytest.mark.parametrize("command", RUNNABLE, ids=[f"{c.where} {c.text[:70]}" for c in RUNNABLE])
def test_documented_command_runs_as_written(site: Site, command: DocCommand):
    runner = runner_for(command.text)
    assert runner is not None
    runner(site, site.substitute(command.text))


def test_genconfig_command_regenerates_the_committed_sample(tmp_path):
    """``make genconfig``'s generator, as the Makefile runs it, writing to a temp file."""
    out = tmp_path / "alarm-relay.conf.sample"
    proc = subprocess.run(
        [str(VENV_BIN / "oslo-config-generator"), "--config-file",
         "etc/alarm-relay/alarm-relay-config-generator.conf", "--output-file", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    committed = (REPO / "etc" / "alarm-relay" / "alarm-relay.conf.sample").read_text()
    assert out.read_text() == committed, (
        "etc/alarm-relay/alarm-relay.conf.sample is not what `make genconfig` generates: "
        "run make genconfig and commit the result")
