"""A real Watcher (PyPI ``python-watcher`` 17) on loopback: decision engine and API.

Watcher's dependencies conflict with ours, so it lives in its own venv (``.venv-watcher`` at
the repository root, or ``$ALARM_RELAY_WATCHER_VENV``), created by :func:`ensure_watcher_venv`
on first use (about 65 s here) and reused after. The same call pip-installs the tiny strategy
plugin in ``tools/harness/watcher_plugin/`` (strategy ``alarm_relay_test``, goal ``dummy``):
every strategy shipped with Watcher needs Nova, this one succeeds and proposes one ``nop``
action. The plugin is installed again whenever its files change.

:class:`Watcher` writes a config (a uniquely named database on the shared MariaDB through
PyMySQL, as Watcher is deployed; its own control exchange and conductor topics on the shared
RabbitMQ; no notifications), creates the schema with ``watcher-db-manage create_schema``, starts
``watcher-decision-engine`` (ready when it logs "Leader election completed") and
``watcher-api-wsgi`` (the ``watcher-api`` script fails with oslo.service 4.8). Without
``keystone`` it runs with ``enable_authentication = False`` and ``enable_webhooks_auth =
False``: requests carry ``X-Roles: admin`` (:meth:`Watcher.headers`). With ``keystone`` the API
validates tokens through keystonemiddleware (``[keystone_authtoken]`` in its config file).

The admin helpers talk plain Watcher REST: audit templates, audits, action plans.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from tools.harness.databases import MariaDBDatabase
from tools.harness.ports import LOOPBACK, free_port, wait_until
from tools.harness.services import SHARED_RABBIT_URL, Service, ServiceError

if TYPE_CHECKING:
    from tools.harness.keystone import Keystone

__all__ = [
    "BridgeProcess",
    "PLUGIN_DIR",
    "TEST_STRATEGY",
    "WATCHER_VENV",
    "Watcher",
    "WatcherAPI",
    "WatcherEngine",
    "ensure_watcher_venv",
]

REPO = Path(__file__).resolve().parents[2]
WATCHER_VENV = Path(os.environ.get("ALARM_RELAY_WATCHER_VENV", REPO / ".venv-watcher"))
WATCHER_REQUIREMENT = os.environ.get("ALARM_RELAY_WATCHER_REQUIREMENT", "python-watcher==17.0.0")
#: Watcher's database driver for MariaDB; python-watcher does not pull it in.
DB_DRIVER_REQUIREMENT = "PyMySQL>=1.0"
PLUGIN_DIR = Path(__file__).resolve().with_name("watcher_plugin")
#: The plugin's strategy (goal ``dummy``): no Nova, one ``nop`` action with the parameters.
TEST_STRATEGY = "alarm_relay_test"
TEST_GOAL = "dummy"
#: Watcher's API microversion header for the webhook API (1.4) and later.
API_VERSION = "1.4"
HTTP_TIMEOUT = 10.0
_PLUGIN_STAMP = ".alarm-relay-plugin"

#: Seconds the last ensure_watcher_venv() call spent installing (0 when cached).
last_install_seconds: float = 0.0


def _plugin_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(PLUGIN_DIR.glob("*")):
        if path.is_file() and path.suffix in (".py", ".toml"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _imports(venv: Path, modules: str) -> bool:
    python = venv / "bin" / "python"
    if not (venv / "bin" / "watcher-api-wsgi").exists() or not python.exists():
        return False
    probe = subprocess.run([str(python), "-c", f"import {modules}"],
                           capture_output=True, timeout=120)
    return probe.returncode == 0


def _venv_ready(venv: Path) -> bool:
    return _imports(venv, "watcher.api.wsgi, pymysql")


def _plugin_ready(venv: Path) -> bool:
    stamp = venv / _PLUGIN_STAMP
    return stamp.exists() and stamp.read_text().strip() == _plugin_digest()


def ensure_watcher_venv(venv: Path = WATCHER_VENV, timeout: float = 900.0) -> Path:
    """Create Watcher's own venv (Watcher + the test strategy plugin) unless it is there.

    Safe to call from parallel processes (a lock file serialises the install).

    :raises ServiceError: the install failed (pip's output tail included)
    """
    global last_install_seconds
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / f".{venv.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        began = time.monotonic()
        need_watcher = not _venv_ready(venv)
        if not need_watcher and _plugin_ready(venv):
            last_install_seconds = 0.0
            return venv
        log_path = venv.parent / f".{venv.name}-install.log"
        pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check"]
        steps = []
        if need_watcher and _imports(venv, "watcher.api.wsgi"):
            # A venv from before Watcher moved to MariaDB: only the driver is missing.
            steps.append([*pip, DB_DRIVER_REQUIREMENT])
        elif need_watcher:
            steps += [[sys.executable, "-m", "venv", "--clear", str(venv)],
                      [*pip, WATCHER_REQUIREMENT, DB_DRIVER_REQUIREMENT]]
        with tempfile.TemporaryDirectory(prefix="alarm-relay-watcher-plugin-") as tmp:
            # Built from a copy: pip builds in the source tree (build/, *.egg-info), and
            # not editable: the venv must not depend on this work tree staying where it is.
            source = Path(tmp) / PLUGIN_DIR.name
            shutil.copytree(PLUGIN_DIR, source,
                            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
            steps.append([*pip, "--force-reinstall", "--no-deps", str(source)])
            with open(log_path, "wb") as log:
                for step in steps:
                    remaining = max(1.0, timeout - (time.monotonic() - began))
                    result = subprocess.run(step, stdout=log, stderr=subprocess.STDOUT,
                                            timeout=remaining)
                    if result.returncode != 0:
                        tail = log_path.read_text(errors="replace").splitlines()[-30:]
                        raise ServiceError(f"installing Watcher failed ({' '.join(step)}):\n"
                                           + "\n".join(tail))
        if not _venv_ready(venv):
            raise ServiceError(f"Watcher venv {venv} is unusable after install")
        (venv / _PLUGIN_STAMP).write_text(_plugin_digest() + "\n")
        last_install_seconds = time.monotonic() - began
        return venv


class WatcherEngine(Service):
    """``watcher-decision-engine --config-file C``; ready when its leader election completed."""

    name = "watcher-decision-engine"
    start_timeout = 90.0
    READY_LINE = "Leader election completed"

    def __init__(self, *, venv: Path, config_path: Path, workdir: Path) -> None:
        super().__init__(workdir=workdir)
        self.venv = venv
        self.config_path = config_path
        self._log_offset = 0

    def command(self) -> list[str]:
        return [str(self.venv / "bin" / "watcher-decision-engine"),
                "--config-file", str(self.config_path)]

    def start(self) -> WatcherEngine:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        return super().start()

    def is_ready(self) -> bool:
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            return self.READY_LINE.encode() in log.read()


class WatcherAPI(Service):
    """``watcher-api-wsgi --host 127.0.0.1 --port P -- --config-file C``."""

    name = "watcher-api"
    start_timeout = 60.0

    def __init__(self, *, venv: Path, config_path: Path, workdir: Path,
                 env: Mapping[str, str] | None = None) -> None:
        super().__init__(workdir=workdir)
        self.venv = venv
        self.config_path = config_path
        self.env = dict(env or {})

    def command(self) -> list[str]:
        return [str(self.venv / "bin" / "watcher-api-wsgi"), "--host", LOOPBACK,
                "--port", str(self.port), "--", "--config-file", str(self.config_path)]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def is_ready(self) -> bool:
        # The root document answers without authentication.
        return requests.get(f"{self.url}/", timeout=2).status_code == 200


class Watcher:
    """Watcher's decision engine and API on loopback, sharing a config and a MariaDB database.

    The database is created uniquely named on the shared MariaDB by :meth:`start` and dropped
    by :meth:`close`. (On SQLite, the API's and the engine's writes to the audit tables can
    meet as "database is locked", which Watcher records as a FAILED audit.)

    :param name: a name no other test uses: Watcher's control exchange and topics derive from
        it (clean them with :meth:`broker_entities`)
    :param transport_url: the broker (the shared RabbitMQ by default)
    :param keystone: when given, the API authenticates with keystonemiddleware against it
        (service user ``watcher`` with the admin role, created here)
    """

    def __init__(self, name: str, *, workdir: str | Path, transport_url: str = SHARED_RABBIT_URL,
                 keystone: Keystone | None = None, venv: Path = WATCHER_VENV) -> None:
        self.name = name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.transport_url = transport_url
        self.keystone = keystone
        self.venv = venv
        self.config_path = self.workdir / "watcher.conf"
        self.database = MariaDBDatabase(prefix="watchertest")
        self.engine = WatcherEngine(venv=venv, config_path=self.config_path,
                                    workdir=self.workdir / "engine")
        self.api = WatcherAPI(venv=venv, config_path=self.config_path,
                              workdir=self.workdir / "api")
        #: seconds each step of start() took: install, schema, engine, api
        self.timings: dict[str, float] = {}
        self._token: str | None = None

    # -- names on the broker

    @property
    def exchange(self) -> str:
        return f"{self.name}-watcher"

    @property
    def topics(self) -> list[str]:
        return [f"{self.name}-de", f"{self.name}-applier"]

    def broker_entities(self) -> tuple[list[str], list[str]]:
        """``(exchanges, queues)`` Watcher declared on the broker, to delete after a test."""
        hosts = ("watcher-test",)
        queues = [q for topic in self.topics for q in (topic, *(f"{topic}.{h}" for h in hosts))]
        return [self.exchange], queues

    # -- lifecycle

    @property
    def url(self) -> str:
        return self.api.url

    def build_config(self) -> str:
        auth = "True" if self.keystone else "False"
        lines = [
            "[DEFAULT]",
            f"transport_url = {self.transport_url}",
            f"control_exchange = {self.exchange}",
            "host = watcher-test",
            f"enable_authentication = {auth}",
            "debug = True",
            "[api]",
            f"enable_webhooks_auth = {auth}",
            "[database]",
            f"connection = {self.database.url}",
            "[watcher_decision_engine]",
            f"conductor_topic = {self.topics[0]}",
            # The default topics clash with the shared broker's durable `openstack`
            # exchange and the engine restarts in a loop.
            "notification_topics =",
            # The shipped collectors (compute, storage, baremetal) need Nova, Cinder or
            # Ironic through Keystone; the test strategy needs no cluster model.
            "[collector]",
            "collector_plugins =",
            "[watcher_applier]",
            f"conductor_topic = {self.topics[1]}",
            "[oslo_messaging_notifications]",
            "driver = noop",
            "[oslo_messaging_rabbit]",
            "rabbit_retry_interval = 1",
        ]
        if self.keystone is not None:
            ks = self.keystone
            lines += [
                "[keystone_authtoken]",
                f"www_authenticate_uri = {ks.auth_url}",
                f"auth_url = {ks.auth_url}",
                "auth_type = password",
                "username = watcher",
                "password = watcher-secret",
                "project_name = service",
                "user_domain_id = default",
                "project_domain_id = default",
            ]
        return "\n".join(lines) + "\n"

    def start(self) -> Watcher:
        """Install (first time), create the schema, start the engine, then the API."""
        began = time.monotonic()
        ensure_watcher_venv(self.venv)
        self.timings["install"] = time.monotonic() - began
        if self.keystone is not None:
            self.keystone.user("watcher", "watcher-secret", project="service", roles=["admin"])
        step = time.monotonic()
        if not self.database.created:
            self.database.create()
            self.config_path.write_text(self.build_config())
            try:
                self._manage("create_schema")
            except BaseException:
                self.database.drop()
                raise
        self.timings["schema"] = time.monotonic() - step
        step = time.monotonic()
        try:
            self.engine.start()
            self.timings["engine"] = time.monotonic() - step
            step = time.monotonic()
            self.api.start()
            self.timings["api"] = time.monotonic() - step
        except BaseException:
            self.close()
            raise
        return self

    def _manage(self, *args: str) -> None:
        command = [str(self.venv / "bin" / "watcher-db-manage"),
                   "--config-file", str(self.config_path), *args]
        log_path = self.workdir / "watcher-db-manage.log"
        with open(log_path, "ab") as log:
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self.workdir, timeout=180)
        if result.returncode != 0:
            tail = log_path.read_text(errors="replace").splitlines()[-30:]
            raise ServiceError(f"watcher-db-manage {args[0]} failed\n" + "\n".join(tail))

    def close(self) -> None:
        """Stop the API and the engine, then drop the database. Idempotent."""
        self.api.close()
        self.engine.close()
        self.database.drop()

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_tail(self, lines: int = 30) -> str:
        """The engine's and the API's ERROR lines (oslo.log writes a traceback as ERROR
        lines too), then the last ``lines`` lines of each log."""
        errors = [f"{service.log_path.name}: {line}"
                  for service in (self.engine, self.api) if service.log_path.exists()
                  for line in service.log_path.read_text(errors="replace").splitlines()
                  if " ERROR " in line]
        return ("--- ERROR lines ---\n" + "\n".join(errors[-60:]) + "\n"
                + self.engine.log_tail(lines) + "\n" + self.api.log_tail(lines))

    # -- REST helpers (admin)

    def headers(self) -> dict[str, str]:
        """Headers of an admin request: noauth identity headers, or a Keystone token."""
        headers = {"OpenStack-API-Version": f"infra-optim {API_VERSION}"}
        if self.keystone is None:
            headers.update({"X-Roles": "admin", "X-Project-Id": "admin-project",
                            "X-User-Id": "relay-tests"})
        else:
            if self._token is None:
                self._token = self.keystone.token()
            headers["X-Auth-Token"] = self._token
        return headers

    def request(self, method: str, path: str, *, expect: int | tuple[int, ...] = 200,
                **kwargs: Any) -> Any:
        resp = requests.request(method, f"{self.url}/v1{path}", headers=self.headers(),
                                timeout=HTTP_TIMEOUT, **kwargs)
        codes = (expect,) if isinstance(expect, int) else expect
        if resp.status_code not in codes:
            raise ServiceError(f"watcher {method} {path}: {resp.status_code} {resp.text}")
        return resp.json() if resp.content else None

    def create_audit_template(self, name: str, *, strategy: str = TEST_STRATEGY,
                              goal: str = TEST_GOAL) -> dict[str, Any]:
        """An audit template of the test strategy; returns Watcher's JSON (``uuid``, ...)."""
        return self.request("POST", "/audit_templates", expect=201,
                            json={"name": name, "goal": goal, "strategy": strategy})

    def audits(self) -> list[dict[str, Any]]:
        """Every audit, with details (name, state, audit_type, parameters...)."""
        return self.request("GET", "/audits/detail", params={"limit": 1000})["audits"]

    def audit(self, ident: str) -> dict[str, Any]:
        return self.request("GET", f"/audits/{ident}")

    def action_plans(self, audit_uuid: str) -> list[dict[str, Any]]:
        return self.request("GET", "/action_plans/detail",
                            params={"audit_uuid": audit_uuid})["action_plans"]

    def actions(self, action_plan_uuid: str) -> list[dict[str, Any]]:
        return self.request("GET", "/actions/detail",
                            params={"action_plan_uuid": action_plan_uuid})["actions"]

    def wait_audit_state(self, ident: str, states: tuple[str, ...] = ("SUCCEEDED",),
                         timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the audit is in one of ``states``; return it."""
        return wait_until(
            lambda: (audit := self.audit(ident))["state"] in states and audit,
            timeout=timeout, interval=0.5,
            what=f"audit {ident} to reach {'/'.join(states)}",
            describe=lambda: self.log_tail(20))


class BridgeProcess:
    """``alarm-relay-watcher --config-file C`` as a process, its log captured to a file.

    :param transport_url: the broker
    :param exchange: the relay's control exchange; :param topic: its notification topic
    :param pool: the bridge's pool (its queue on the broker)
    :param rules: the rules file's text
    :param watcher: the Watcher to call (noauth unless ``sections`` say otherwise)
    :param sections: config sections merged over the defaults
    """

    def __init__(self, *, transport_url: str, exchange: str, topic: str, pool: str,
                 rules: str, watcher: Watcher | None, workdir: str | Path,
                 sections: Mapping[str, Mapping[str, Any]] = ()) -> None:
        from tools.harness.relay import write_config

        self._write_config = write_config
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rules_path = self.workdir / "watcher-rules.yaml"
        self.rules_path.write_text(rules)
        self.config_path = self.workdir / "alarm-relay-watcher.conf"
        self.log_path = self.workdir / "alarm-relay-watcher.log"
        self.metrics_port = free_port()
        config: dict[str, dict[str, Any]] = {
            "DEFAULT": {"transport_url": transport_url, "control_exchange": exchange,
                        "state_dir": self.workdir / "state", "debug": False},
            "oslo_messaging_notifications": {"topics": topic},
            "oslo_messaging_rabbit": {"rabbit_retry_interval": 1},
            "watcher_bridge": {"rules_path": self.rules_path, "pool": pool,
                               "metrics_port": self.metrics_port,
                               "retry_initial_delay": 0.5, "retry_max_delay": 2.0},
            "watcher_client": {"timeout": 5.0},
        }
        if watcher is not None and watcher.keystone is None:
            config["watcher_client"].update(auth_mode="noauth", endpoint_override=watcher.url)
        for section, values in dict(sections).items():
            config.setdefault(section, {}).update(values)
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.rewrite_config()

    def rewrite_config(self, sections: Mapping[str, Mapping[str, Any]] = ()) -> None:
        for section, values in dict(sections).items():
            self.config.setdefault(section, {}).update(values)
        self._write_config(self.config_path, self.config)

    def start(self, *, wait_ready: bool = True, timeout: float = 30.0) -> BridgeProcess:
        from tools.harness.relay import relay_script

        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"alarm-relay-watcher already running (pid {self.proc.pid})")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()/kill()
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [relay_script("alarm-relay-watcher"), "--config-file", str(self.config_path)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        _bridges.append(self.proc)
        if wait_ready:
            self.wait_for_log("alarm-relay-watcher ready", timeout=timeout)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, *, timeout: float = 30.0, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"alarm-relay-watcher exited with {self.proc.returncode} "
                                   f"before logging {text!r}:\n{self.log()[-4000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"alarm-relay-watcher did not log {text!r} within {timeout}s:\n"
                           f"{self.log()[-4000:]}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        self._close_log()
        return code

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` on /metrics whose labels include ``labels``."""
        from tools.harness.relay import metric_sum

        resp = requests.get(f"http://{LOOPBACK}:{self.metrics_port}/metrics", timeout=5)
        resp.raise_for_status()
        return metric_sum(resp.text, name, **labels)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            self._close_log()
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            self._close_log()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> BridgeProcess:
        return self.start()

    def close(self) -> None:
        """Stop (by force if it does not stop). Idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop()
            except Exception:  # noqa: BLE001 - stop by force then
                self.kill()
        self._close_log()

    def __exit__(self, *exc: object) -> None:
        self.close()


_bridges: list[subprocess.Popen[bytes]] = []


@atexit.register
def _kill_bridges() -> None:
    for proc in _bridges:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
