"""Real services for tests, benchmarks and the demo: each on free 127.0.0.1 ports in a temp dir.

Every service is a small class with ``start()``, ``stop()``, ``kill()``, ``close()``, ``url`` and
``port``, usable as a context manager (``with Alertmanager() as am: ...``). ``start()`` returns
only once the service answers, or raises :class:`ServiceError` quoting the tail of its log.

Safety nets, because a test run must never leave daemons behind:

- each service runs in its own process group (``start_new_session``), so ``stop()``/``kill()``
  reach its children too (RabbitMQ's ``erl_child_setup``), and only processes we started;
- a child started from the main thread gets ``PR_SET_PDEATHSIG`` = SIGTERM, so it goes away
  even when the test process is SIGKILLed;
- an ``atexit`` hook stops whatever is still running when the interpreter exits.

The binaries are Debian's (``prometheus-alertmanager`` 0.25, ``prometheus`` 2.42,
``prometheus-node-exporter`` 1.5, ``rabbitmq-server`` 3.10); ``make services`` installs them.
Aetos 3.0 comes from the project's venv and is served by ``wsgi_serve.py`` in a subprocess.
"""

from __future__ import annotations

import atexit
import ctypes
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import requests
import yaml

from tools.harness.ports import LOOPBACK, free_port, free_ports, port_open, wait_until

__all__ = [
    "Aetos",
    "Alertmanager",
    "AlertmanagerCluster",
    "NodeExporter",
    "Prometheus",
    "RabbitNode",
    "ScrapeTarget",
    "Service",
    "ServiceError",
    "SHARED_RABBIT_URL",
    "ensure_shared_rabbitmq",
    "make_alert",
    "shared_transport_url",
]

ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"
PROMETHEUS_BIN = "/usr/bin/prometheus"
NODE_EXPORTER_BIN = "/usr/bin/prometheus-node-exporter"
# The Debian wrappers in /usr/sbin su to the rabbitmq user and drop our environment; the real
# scripts take RABBITMQ_* variables as given and run as whoever calls them.
RABBITMQ_SERVER_BIN = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL_BIN = "/usr/lib/rabbitmq/bin/rabbitmqctl"
WSGI_SERVE = Path(__file__).with_name("wsgi_serve.py")

SHARED_RABBIT_PORT = 5672
SHARED_RABBIT_URL = f"rabbit://guest:guest@{LOOPBACK}:{SHARED_RABBIT_PORT}/"

#: Set ALARM_RELAY_KEEP_TMP=1 to keep the services' temp dirs (configs, logs) for debugging.
KEEP_TMP = os.environ.get("ALARM_RELAY_KEEP_TMP", "") not in ("", "0")

HTTP_TIMEOUT = 10.0


class ServiceError(RuntimeError):
    """A service failed to start, stop or answer; the message carries its log tail."""


# --------------------------------------------------------------------------- process plumbing

_live: set[Service] = set()
_live_lock = threading.Lock()

try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: no parent-death signal, atexit still helps
    _prctl = None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: keep it to one libc call, resolved beforehand.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        services = list(_live)
    for service in services:
        try:
            service.stop(timeout=5)
        except Exception:  # noqa: BLE001,S110 - best effort at interpreter exit
            pass


def _utc(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        data = path.read_bytes()[-16384:]
    except OSError:
        return f"(no log at {path})"
    text = data.decode("utf-8", "replace").splitlines()[-lines:]
    return "\n".join(text)


class Service:
    """A daemon we start as a subprocess and own until ``stop()``.

    Subclasses set ``name`` and implement :meth:`command` (and usually :meth:`prepare` to write
    their config and :meth:`is_ready`). The work dir survives ``stop()`` so that ``restart()``
    behaves like a real restart; ``close()`` stops and removes it.
    """

    name: ClassVar[str] = "service"
    start_timeout: ClassVar[float] = 30.0
    stop_timeout: ClassVar[float] = 10.0

    def __init__(self, *, port: int | None = None, workdir: str | Path | None = None) -> None:
        self.port: int = port if port is not None else free_port()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(
            tempfile.mkdtemp(prefix=f"relaytest-{self.name}-")
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        #: wall-clock seconds the last successful start() took
        self.started_in: float | None = None
        self._closed = False

    # -- for subclasses
    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """Environment of the process; None inherits ours."""
        return None

    def prepare(self) -> None:
        """Write config files; called before every start."""

    def is_ready(self) -> bool:
        """Return True once the service answers (default: its port accepts connections)."""
        return port_open(self.port)

    # -- public surface
    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` (what Prometheus targets and Alertmanager peers look like)."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return f"--- last lines of {self.log_path} ---\n{_tail(self.log_path, lines)}"

    def start(self) -> Self:
        """Start the process and wait until it is ready.

        :raises ServiceError: the process exited or did not become ready in time (log tail
            included); the process is killed in that case.
        """
        if self._closed:
            raise ServiceError(f"{self.name}: start() after close()")
        if self.running:
            return self
        self.prepare()
        began = time.monotonic()
        in_main = threading.current_thread() is threading.main_thread()
        with open(self.log_path, "ab") as log:
            log.write(f"=== {time.strftime('%H:%M:%S')} starting: {self.command()}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self.environment(),
                start_new_session=True,
                # The parent-death signal follows the creating *thread*; from a worker thread
                # it would fire when that thread ends, so only the main thread sets it.
                preexec_fn=_die_with_parent if in_main else None,  # noqa: PLW1509
            )
        with _live_lock:
            _live.add(self)
        try:
            wait_until(
                self._ready_or_dead,
                timeout=self.start_timeout,
                interval=0.1,
                what=f"{self.name} to be ready on {self.address}",
                describe=self.log_tail,
                fatal=(_ProcessDied,),
            )
        except _ProcessDied as err:
            self.kill()
            raise ServiceError(str(err)) from None
        except TimeoutError as err:
            self.kill()
            raise ServiceError(str(err)) from None
        self.started_in = time.monotonic() - began
        return self

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` seconds. Idempotent."""
        proc = self.process
        if proc is None:
            return
        timeout = self.stop_timeout if timeout is None else timeout
        if proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                proc.wait(10)
        self._finish()

    def kill(self) -> None:
        """SIGKILL the process group at once (a crash, not a shutdown). Idempotent."""
        proc = self.process
        if proc is None:
            return
        self._signal_group(signal.SIGKILL)
        proc.wait(10)
        self._finish()

    def restart(self) -> Self:
        """Stop and start again on the same port with the same work dir (data kept)."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and remove the temp dir (unless ALARM_RELAY_KEEP_TMP is set)."""
        self.stop()
        self._closed = True
        if self._own_workdir and not KEEP_TMP:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {self.address} {state}>"

    # -- internals
    def _ready_or_dead(self) -> bool:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise _ProcessDied(
                f"{self.name} exited with code {code} during start-up\n{self.log_tail()}"
            )
        return self.is_ready()

    def _signal_group(self, sig: int) -> None:
        assert self.process is not None
        # The group id is our child's pid (start_new_session); the kernel keeps that id
        # reserved while any member lives, so this reaches only what we started.
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            self.process.send_signal(sig)

    def _finish(self) -> None:
        # Orphans left in the group (a daemon's helper) go too; ESRCH when none are left.
        self._signal_group(signal.SIGKILL)
        with _live_lock:
            _live.discard(self)


class _ProcessDied(Exception):
    """Internal: the process exited while we waited for it (not retried by wait_until)."""


def _get_json(url: str, **kwargs: Any) -> Any:
    resp = requests.get(url, timeout=HTTP_TIMEOUT, **kwargs)
    resp.raise_for_status()
    return resp.json()


# --------------------------------------------------------------------------- Alertmanager


def make_alert(
    alertname: str,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    *,
    starts_at: dt.datetime | None = None,
    ends_at: dt.datetime | None = None,
    generator_url: str | None = None,
) -> dict[str, Any]:
    """Build one alert object for ``POST /api/v2/alerts``.

    Without ``ends_at`` Alertmanager sets endsAt = now + resolve_timeout; an ``ends_at`` in the
    past resolves the alert.
    """
    alert: dict[str, Any] = {"labels": {"alertname": alertname, **(labels or {})}}
    if annotations:
        alert["annotations"] = dict(annotations)
    if starts_at is not None:
        alert["startsAt"] = _utc(starts_at)
    if ends_at is not None:
        alert["endsAt"] = _utc(ends_at)
    if generator_url is not None:
        alert["generatorURL"] = generator_url
    return alert


class Alertmanager(Service):
    """Prometheus Alertmanager 0.25 with a config written by this class.

    :param webhook_url: when set, the default route sends to a receiver ``relay`` with this
        webhook URL (``send_resolved: true``); otherwise to a receiver ``null`` with nothing.
    :param cluster_port: gossip port on 127.0.0.1; None disables clustering.
    :param peers: other members' ``127.0.0.1:PORT`` gossip addresses.
    :param config: a complete config dict used as-is instead of the generated one.
    """

    name = "alertmanager"

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        resolve_timeout: str = "5m",
        group_by: Sequence[str] = ("alertname",),
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "4h",
        cluster_port: int | None = None,
        peers: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        workdir: str | Path | None = None,
    ) -> None:
        super().__init__(port=port, workdir=workdir)
        self.webhook_url = webhook_url
        self.resolve_timeout = resolve_timeout
        self.group_by = list(group_by)
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval
        self.cluster_port = cluster_port
        self.peers = list(peers)
        self.config = dict(config) if config is not None else None
        self.extra_args = list(extra_args)
        self.config_path = self.workdir / "alertmanager.yml"
        self.data_dir = self.workdir / "data"

    def build_config(self) -> dict[str, Any]:
        if self.config is not None:
            return self.config
        receiver = "relay" if self.webhook_url else "null"
        receivers: list[dict[str, Any]] = [{"name": "null"}]
        if self.webhook_url:
            receivers.append(
                {
                    "name": "relay",
                    "webhook_configs": [{"url": self.webhook_url, "send_resolved": True}],
                }
            )
        return {
            "global": {"resolve_timeout": self.resolve_timeout},
            "route": {
                "receiver": receiver,
                "group_by": self.group_by,
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": receivers,
        }

    def prepare(self) -> None:
        self.data_dir.mkdir(exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.build_config(), sort_keys=False))

    def command(self) -> list[str]:
        cmd = [
            ALERTMANAGER_BIN,
            f"--config.file={self.config_path}",
            f"--storage.path={self.data_dir}",
            f"--web.listen-address={self.address}",
            f"--web.external-url={self.url}/",
            "--log.level=debug",
        ]
        if self.cluster_port is None:
            cmd.append("--cluster.listen-address=")
        else:
            gossip = f"{LOOPBACK}:{self.cluster_port}"
            cmd += [
                f"--cluster.listen-address={gossip}",
                f"--cluster.advertise-address={gossip}",
                # Defaults are tuned for WANs (push-pull every minute); loopback converges fast.
                "--cluster.pushpull-interval=2s",
                "--cluster.gossip-interval=100ms",
                "--cluster.settle-timeout=2s",
            ]
            cmd += [f"--cluster.peer={peer}" for peer in self.peers]
        return cmd + self.extra_args

    def is_ready(self) -> bool:
        return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def reload(self) -> None:
        """Rewrite the config from the attributes (e.g. a new ``webhook_url``) and reload it."""
        self.prepare()
        resp = requests.post(f"{self.url}/-/reload", timeout=HTTP_TIMEOUT)
        if resp.status_code != 200:
            raise ServiceError(f"alertmanager reload failed: {resp.status_code} {resp.text}")

    # -- API helpers
    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v2"

    def post_alerts(self, alerts: Iterable[Mapping[str, Any]]) -> None:
        """POST alerts (see :func:`make_alert`) to ``/api/v2/alerts``."""
        resp = requests.post(f"{self.api_url}/alerts", json=list(alerts), timeout=HTTP_TIMEOUT)
        if resp.status_code != 200:
            raise ServiceError(f"POST /api/v2/alerts: {resp.status_code} {resp.text}")

    def get_alerts(self, **params: Any) -> list[dict[str, Any]]:
        """GET ``/api/v2/alerts``; params as the API takes them (active, silenced, filter...)."""
        query = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()}
        return _get_json(f"{self.api_url}/alerts", params=query)

    def add_silence(
        self,
        matchers: Mapping[str, str] | Sequence[Mapping[str, Any]],
        duration: float = 3600.0,
        *,
        comment: str = "test",
        created_by: str = "alarm-relay tests",
    ) -> str:
        """Create a silence from now for ``duration`` seconds; return its ID.

        :param matchers: ``{label: value}`` (equality) or full API matcher objects.
        """
        if isinstance(matchers, Mapping):
            matcher_list = [
                {"name": k, "value": v, "isRegex": False, "isEqual": True}
                for k, v in matchers.items()
            ]
        else:
            matcher_list = [dict(m) for m in matchers]
        now = dt.datetime.now(dt.UTC)
        body = {
            "matchers": matcher_list,
            "startsAt": _utc(now),
            "endsAt": _utc(now + dt.timedelta(seconds=duration)),
            "createdBy": created_by,
            "comment": comment,
        }
        resp = requests.post(f"{self.api_url}/silences", json=body, timeout=HTTP_TIMEOUT)
        if resp.status_code != 200:
            raise ServiceError(f"POST /api/v2/silences: {resp.status_code} {resp.text}")
        return str(resp.json()["silenceID"])

    def expire_silence(self, silence_id: str) -> None:
        resp = requests.delete(f"{self.api_url}/silence/{silence_id}", timeout=HTTP_TIMEOUT)
        if resp.status_code != 200:
            raise ServiceError(f"DELETE silence {silence_id}: {resp.status_code} {resp.text}")

    def get_silences(self) -> list[dict[str, Any]]:
        return _get_json(f"{self.api_url}/silences")

    def status(self) -> dict[str, Any]:
        return _get_json(f"{self.api_url}/status")

    def cluster_peers(self) -> list[dict[str, Any]]:
        return self.status().get("cluster", {}).get("peers") or []


class AlertmanagerCluster:
    """``n`` Alertmanager replicas gossiping on loopback, like an HA pair in production.

    Keyword arguments go to every :class:`Alertmanager`. ``start()`` returns once every member's
    ``/api/v2/status`` lists all ``n`` peers.
    """

    start_timeout = 30.0

    def __init__(self, n: int = 2, **kwargs: Any) -> None:
        if n < 1:
            raise ValueError("a cluster needs at least one member")
        gossip = free_ports(n)
        self.members: list[Alertmanager] = [
            Alertmanager(
                cluster_port=own,
                peers=[f"{LOOPBACK}:{p}" for p in gossip if p != own],
                **kwargs,
            )
            for own in gossip
        ]
        self.started_in: float | None = None

    @property
    def urls(self) -> list[str]:
        return [m.url for m in self.members]

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[Alertmanager]:
        return iter(self.members)

    def __getitem__(self, index: int) -> Alertmanager:
        return self.members[index]

    def start(self) -> Self:
        began = time.monotonic()
        try:
            for member in self.members:
                member.start()
            self.wait_converged()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self

    def wait_converged(self, timeout: float | None = None) -> None:
        """Wait until every running member sees every running member as a peer."""
        live = [m for m in self.members if m.running]

        def converged() -> bool:
            # "ready" = gossip settled (--cluster.settle-timeout, 2 s here); before that a
            # replica holds back notifications, which would skew webhook timing in tests.
            return all(
                len(m.cluster_peers()) >= len(live) and m.status()["cluster"]["status"] == "ready"
                for m in live
            )

        wait_until(
            converged,
            timeout=timeout or self.start_timeout,
            interval=0.2,
            what=f"{len(live)} alertmanagers to see each other and settle",
            describe=lambda: "\n".join(m.log_tail(15) for m in live),
        )

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def close(self) -> None:
        for member in self.members:
            member.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- node exporter


class NodeExporter(Service):
    """prometheus-node-exporter with a few fast collectors plus a textfile directory.

    Tests set custom metric values with :meth:`set_metric`; files are written atomically
    (temp file + rename) so a scrape never sees half a file.
    """

    name = "node-exporter"
    DEFAULT_COLLECTORS: ClassVar[tuple[str, ...]] = ("cpu", "loadavg", "meminfo", "time", "uname")

    def __init__(
        self,
        *,
        collectors: Sequence[str] = DEFAULT_COLLECTORS,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        workdir: str | Path | None = None,
    ) -> None:
        super().__init__(port=port, workdir=workdir)
        self.collectors = list(collectors)
        self.extra_args = list(extra_args)
        self.textfile_dir = self.workdir / "textfile"
        self.textfile_dir.mkdir(exist_ok=True)
        self._series: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}

    def command(self) -> list[str]:
        # The default collector set reads all of /proc and /sys (slow, noisy); the tests need
        # only a few real metrics and the textfile ones they write themselves.
        cmd = [
            NODE_EXPORTER_BIN,
            f"--web.listen-address={self.address}",
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={self.textfile_dir}",
        ]
        return cmd + [f"--collector.{c}" for c in self.collectors] + self.extra_args

    def is_ready(self) -> bool:
        return requests.get(f"{self.url}/metrics", timeout=2).status_code == 200

    def write_textfile(self, filename: str, text: str) -> Path:
        """Atomically replace ``textfile/<filename>`` (must end in ``.prom``)."""
        if not filename.endswith(".prom") or "/" in filename:
            raise ValueError("textfile names are plain *.prom file names")
        target = self.textfile_dir / filename
        # A dot-file is ignored by the collector until it is renamed into place.
        tmp = self.textfile_dir / f".{filename}.{os.getpid()}.tmp"
        tmp.write_text(text if text.endswith("\n") or not text else text + "\n")
        os.replace(tmp, target)
        return target

    def remove_textfile(self, filename: str) -> None:
        (self.textfile_dir / filename).unlink(missing_ok=True)

    def set_metric(
        self,
        name: str,
        value: float,
        labels: Mapping[str, str] | None = None,
        *,
        help: str | None = None,  # noqa: A002 - the exposition format's word
    ) -> None:
        """Set gauge ``name{labels}`` to ``value``; other label sets of ``name`` are kept."""
        key = tuple(sorted((labels or {}).items()))
        self._series.setdefault(name, {})[key] = float(value)
        self._write_metric(name, help)

    def delete_metric(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Drop one series of ``name`` (or all when labels is None)."""
        if labels is None:
            self._series.pop(name, None)
        else:
            self._series.get(name, {}).pop(tuple(sorted(labels.items())), None)
        if self._series.get(name):
            self._write_metric(name, None)
        else:
            self._series.pop(name, None)
            self.remove_textfile(f"{name}.prom")

    def _write_metric(self, name: str, help_text: str | None) -> None:
        lines = [f"# HELP {name} {help_text or 'set by alarm-relay tests'}", f"# TYPE {name} gauge"]
        for key, value in self._series[name].items():
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in key)
            lines.append(f"{name}{{{label_text}}} {value!r}" if key else f"{name} {value!r}")
        self.write_textfile(f"{name}.prom", "\n".join(lines) + "\n")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


# --------------------------------------------------------------------------- Prometheus


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    """One static scrape target: ``address`` is ``host:port``; ``labels`` are target labels."""

    address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    job: str = "node"


TargetSpec = ScrapeTarget | str | Service


class Prometheus(Service):
    """Prometheus 2.42 scraping static targets every second.

    :param targets: ``ScrapeTarget``\\ s, ``"host:port"`` strings or services (their address).
    :param rules: alerting/recording rules as a dict (``{"groups": [...]}``) or YAML text.
    :param alertmanagers: Alertmanager URLs or ``host:port``\\ s to send alerts to.
    """

    name = "prometheus"

    def __init__(
        self,
        *,
        targets: Iterable[TargetSpec] = (),
        rules: Mapping[str, Any] | str | None = None,
        alertmanagers: Iterable[str | Alertmanager] = (),
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        external_labels: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        workdir: str | Path | None = None,
    ) -> None:
        super().__init__(port=port, workdir=workdir)
        self.targets = [_as_target(t) for t in targets]
        self.rules = rules
        self.alertmanagers = [
            a.address if isinstance(a, Alertmanager) else a.split("://", 1)[-1].rstrip("/")
            for a in alertmanagers
        ]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.external_labels = dict(external_labels or {})
        self.extra_args = list(extra_args)
        self.config_path = self.workdir / "prometheus.yml"
        self.rules_path = self.workdir / "rules.yml"
        self.data_dir = self.workdir / "data"

    def build_config(self) -> dict[str, Any]:
        jobs: dict[str, list[dict[str, Any]]] = {}
        for target in self.targets:
            entry: dict[str, Any] = {"targets": [target.address]}
            if target.labels:
                entry["labels"] = dict(target.labels)
            jobs.setdefault(target.job, []).append(entry)
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "scrape_configs": [
                {"job_name": job, "static_configs": entries} for job, entries in jobs.items()
            ],
        }
        if self.external_labels:
            config["global"]["external_labels"] = self.external_labels
        if self.rules is not None:
            config["rule_files"] = [str(self.rules_path)]
        if self.alertmanagers:
            config["alerting"] = {
                "alertmanagers": [
                    {"api_version": "v2", "static_configs": [{"targets": self.alertmanagers}]}
                ]
            }
        return config

    def prepare(self) -> None:
        self.data_dir.mkdir(exist_ok=True)
        if self.rules is not None:
            text = self.rules if isinstance(self.rules, str) else yaml.safe_dump(dict(self.rules))
            self.rules_path.write_text(text)
        self.config_path.write_text(yaml.safe_dump(self.build_config(), sort_keys=False))

    def command(self) -> list[str]:
        return [
            PROMETHEUS_BIN,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={self.address}",
            f"--web.external-url={self.url}/",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
            *self.extra_args,
        ]

    def is_ready(self) -> bool:
        return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def set_rules(self, rules: Mapping[str, Any] | str | None) -> None:
        """Replace the rule file and reload the config."""
        self.rules = rules
        self.reload()

    def reload(self) -> None:
        """Rewrite the config files from the attributes and ``POST /-/reload``."""
        self.prepare()
        resp = requests.post(f"{self.url}/-/reload", timeout=HTTP_TIMEOUT)
        if resp.status_code != 200:
            raise ServiceError(f"prometheus reload failed: {resp.status_code} {resp.text}")

    def query(self, promql: str, *, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; return ``data.result``."""
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = at
        body = _get_json(f"{self.url}/api/v1/query", params=params)
        if body.get("status") != "success":
            raise ServiceError(f"query {promql!r} failed: {body}")
        return body["data"]["result"]

    def wait_for_series(self, promql: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until an instant query returns a non-empty result; return it."""
        return wait_until(
            lambda: self.query(promql),
            timeout=timeout,
            interval=0.25,
            what=f"prometheus to return series for {promql!r}",
            describe=self.log_tail,
        )

    def targets_health(self) -> list[dict[str, Any]]:
        return _get_json(f"{self.url}/api/v1/targets")["data"]["activeTargets"]


def _as_target(spec: TargetSpec) -> ScrapeTarget:
    if isinstance(spec, ScrapeTarget):
        return spec
    if isinstance(spec, Service):
        return ScrapeTarget(spec.address)
    return ScrapeTarget(spec)


# --------------------------------------------------------------------------- Aetos


class Aetos(Service):
    """Aetos (the Keystone-protected Prometheus API) served by uvicorn in a subprocess.

    Defaults to ``auth_mode = noauth``: callers send ``X-Project-Id`` and ``X-Roles: admin``
    (see :meth:`headers`). For keystone mode pass ``auth_mode="keystone"``,
    ``extra_config`` sections and ``env`` (keystonemiddleware reads ``OS_KEYSTONE_AUTHTOKEN__*``
    from the environment, not from Aetos's config file).

    :param prometheus: the Prometheus to front (or give ``prometheus_host``/``prometheus_port``).
    :param extra_config: ``{section: {option: value}}`` merged into the generated file, or raw
        INI text appended to it.
    :param env: extra environment variables for the server process.
    :param python: interpreter that has aetos, uvicorn and a2wsgi (default: ours).
    """

    name = "aetos"

    def __init__(
        self,
        *,
        prometheus: Prometheus | None = None,
        prometheus_host: str = LOOPBACK,
        prometheus_port: int | None = None,
        auth_mode: str = "noauth",
        extra_config: Mapping[str, Mapping[str, str]] | str | None = None,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        port: int | None = None,
        workdir: str | Path | None = None,
    ) -> None:
        super().__init__(port=port, workdir=workdir)
        if prometheus is not None:
            prometheus_host, prometheus_port = LOOPBACK, prometheus.port
        if prometheus_port is None:
            raise ValueError("Aetos needs prometheus= or prometheus_port=")
        self.prometheus_host = prometheus_host
        self.prometheus_port = prometheus_port
        self.auth_mode = auth_mode
        self.extra_config = extra_config
        self.env = dict(env or {})
        self.python = python
        self.config_path = self.workdir / "aetos.conf"

    def build_config(self) -> str:
        sections: dict[str, dict[str, str]] = {
            "DEFAULT": {"auth_mode": self.auth_mode, "debug": "true"},
            "prometheus": {"host": self.prometheus_host, "port": str(self.prometheus_port)},
        }
        raw = ""
        if isinstance(self.extra_config, str):
            raw = self.extra_config
        elif self.extra_config:
            for section, options in self.extra_config.items():
                sections.setdefault(section, {}).update(options)
        text = "".join(
            f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in options.items()) + "\n"
            for section, options in sections.items()
        )
        return text + raw

    def prepare(self) -> None:
        self.config_path.write_text(self.build_config())

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def command(self) -> list[str]:
        return [
            self.python,
            str(WSGI_SERVE),
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--app",
            "aetos.app:build_wsgi_app",
            "--kwargs",
            json.dumps({"argv": ["--config-file", str(self.config_path)]}),
        ]

    def is_ready(self) -> bool:
        # Any HTTP answer means the app is loaded (in keystone mode "/" may say 401).
        return requests.get(f"{self.url}/", timeout=2).status_code < 500

    @staticmethod
    def headers(project_id: str = "admin-project", roles: str = "admin") -> dict[str, str]:
        """Identity headers that noauth mode trusts (admin sees every project)."""
        return {"X-Project-Id": project_id, "X-Roles": roles, "X-User-Id": "relay-tests"}

    def query(
        self, promql: str, *, headers: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Instant query through Aetos; return ``data.result``."""
        hdrs = dict(headers) if headers is not None else self.headers()
        body = _get_json(f"{self.url}/api/v1/query", params={"query": promql}, headers=hdrs)
        if body.get("status") != "success":
            raise ServiceError(f"aetos query {promql!r} failed: {body}")
        return body["data"]["result"]


# --------------------------------------------------------------------------- RabbitMQ


def ensure_shared_rabbitmq(timeout: float = 90.0) -> None:
    """Make sure the machine's broker answers on 127.0.0.1:5672; start it if it does not.

    It is shared with other tests and other people: never stop it.
    """
    if port_open(SHARED_RABBIT_PORT):
        return
    # The Debian wrapper switches to the rabbitmq user and uses the packaged config.
    subprocess.run(["rabbitmq-server", "-detached"], check=False, timeout=60)
    wait_until(
        lambda: port_open(SHARED_RABBIT_PORT),
        timeout=timeout,
        interval=0.5,
        what="the shared RabbitMQ on 127.0.0.1:5672",
        describe=lambda: _tail(Path("/var/log/rabbitmq/startup_err"), 20),
    )


def shared_transport_url(*, ensure: bool = True) -> str:
    """oslo.messaging URL of the shared broker (guest/guest on 127.0.0.1:5672).

    Tests isolate themselves by a unique topic or exchange, not by a broker of their own.
    """
    if ensure:
        ensure_shared_rabbitmq()
    return SHARED_RABBIT_URL


class RabbitNode(Service):
    """A private RabbitMQ node (own node name, ports, cookie, mnesia and logs in a temp dir).

    For outage tests: ``stop_app()`` makes the broker refuse AMQP while the Erlang node stays
    up, ``start_app()`` brings it back with its data; ``kill()`` is a crash; ``restart()`` a
    full restart keeping mnesia. The node runs as the calling user with ``HOME`` in its temp
    dir, so its Erlang cookie is its own (root's ``~/.erlang.cookie`` and the shared broker's
    cookie are never touched) and ``rabbitmqctl`` is called with the same ``HOME``.
    """

    name = "rabbitmq"
    start_timeout = 90.0
    stop_timeout = 30.0

    def __init__(
        self,
        *,
        port: int | None = None,
        dist_port: int | None = None,
        nodename: str | None = None,
        workdir: str | Path | None = None,
        extra_config: str = "",
    ) -> None:
        super().__init__(port=port, workdir=workdir)
        #: lines appended to the node's rabbitmq.conf (``max_message_size = 16777216``)
        self.extra_config = extra_config
        self.dist_port = dist_port if dist_port is not None else free_port()
        self.nodename = nodename or f"relaytest-{secrets.token_hex(4)}@localhost"
        self.home = self.workdir / "home"
        self.config_file = self.workdir / "rabbitmq.conf"

    @property
    def transport_url(self) -> str:
        return f"rabbit://guest:guest@{LOOPBACK}:{self.port}/"

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@{LOOPBACK}:{self.port}//"

    def prepare(self) -> None:
        for sub in ("home", "mnesia", "log"):
            (self.workdir / sub).mkdir(exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
            cookie.chmod(0o400)
        # Our own files replace /etc/rabbitmq/*: the packaged rabbitmq.conf pins the listener
        # to 5672 and rabbitmq-env.conf the node name, both of which belong to the shared node.
        self.config_file.write_text(
            f"listeners.tcp.1 = {LOOPBACK}:{self.port}\n"
            "loopback_users.guest = true\n"
            "log.console = true\n"
            "log.file.level = info\n"
            + self.extra_config
        )
        (self.workdir / "rabbitmq-env.conf").write_text("")
        (self.workdir / "enabled_plugins").write_text("[].\n")

    def environment(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))
        }
        env.update(
            HOME=str(self.home),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_NODE_IP_ADDRESS=LOOPBACK,
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.workdir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.workdir / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.workdir / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.config_file),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.workdir / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(self.workdir / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(self.workdir / "rabbitmq.pid"),
            # Keep Erlang distribution on loopback too (it listens on 0.0.0.0 otherwise).
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_ADDRESS=LOOPBACK,
        )
        return env

    def command(self) -> list[str]:
        # Foreground: the process we started is the node, so stop()/kill() reach it by PID.
        return [RABBITMQ_SERVER_BIN]

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n NODE ARGS...`` against this node; return its output.

        :raises ServiceError: non-zero exit (output and log tail included).
        """
        proc = subprocess.run(
            [RABBITMQCTL_BIN, "-n", self.nodename, *args],
            env=self.environment(),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise ServiceError(
                f"rabbitmqctl {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout}{proc.stderr}\n{self.log_tail(15)}"
            )
        return proc.stdout

    def stop_app(self, timeout: float = 30.0) -> None:
        """Stop the RabbitMQ application (AMQP refused, connections closed); node stays up."""
        self.ctl("stop_app", timeout=timeout)
        wait_until(
            lambda: not port_open(self.port),
            timeout=timeout,
            what=f"rabbitmq {self.nodename} to close port {self.port}",
        )

    def start_app(self, timeout: float = 60.0) -> None:
        """Start the application again and wait until AMQP is accepted."""
        self.ctl("start_app", timeout=timeout)
        wait_until(
            lambda: port_open(self.port),
            timeout=timeout,
            what=f"rabbitmq {self.nodename} to accept AMQP on {self.port}",
            describe=self.log_tail,
        )
