"""The alarm-relay daemon as a real process, started from its console script.

Used by functional tests, benchmarks and the demo: writes a config file,
starts ``alarm-relay --config-file ...``, waits for readiness on /readyz or
the "ready" log line, and sends signals to the master by PID.
"""

from __future__ import annotations

import atexit
import configparser
import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from tools.harness.ports import free_port

__all__ = ["RelayProcess", "relay_script", "write_config"]

READY_LINE = "alarm-relay ready"

# Every daemon started here, so none outlives the test run, whatever a test forgot.
_started: list[subprocess.Popen] = []


@atexit.register
def _kill_leftovers() -> None:
    for proc in _started:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def relay_script(name: str = "alarm-relay") -> str:
    """Path of a console script installed next to the running interpreter."""
    candidate = pathlib.Path(sys.executable).with_name(name)
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed (pip install -e .)")
    return found


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` in a /metrics text whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def write_config(path: pathlib.Path, sections: Mapping[str, Mapping[str, Any]]) -> pathlib.Path:
    """Write an oslo.config INI file; list values are joined with commas."""
    parser = configparser.ConfigParser(interpolation=None)
    for section, values in sections.items():
        if section != "DEFAULT":
            parser.add_section(section)
        for key, value in values.items():
            if isinstance(value, (list, tuple)):
                value = ",".join(str(v) for v in value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            parser.set(section, key, str(value))
    with path.open("w") as handle:
        parser.write(handle)
    return path


class RelayProcess:
    """One alarm-relay daemon: config in a temp dir, log captured to a file.

    :param sections: config sections merged over sensible test defaults
        (free webhook port, state_dir in the temp dir, short timeouts)
    """

    def __init__(self, *, mapping_path: str | os.PathLike, transport_url: str,
                 alertmanager_urls: list[str], sections: Mapping[str, Mapping[str, Any]] = (),
                 workdir: str | os.PathLike | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="alarm-relay-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.state_dir = self.workdir / "state"
        self.log_path = self.workdir / "alarm-relay.log"
        self.config_path = self.workdir / "alarm-relay.conf"
        self.env = dict(env or {})
        config: dict[str, dict[str, Any]] = {
            "DEFAULT": {"transport_url": transport_url, "state_dir": self.state_dir,
                        "graceful_shutdown_timeout": 20, "debug": False},
            "alertmanager": {"urls": alertmanager_urls, "poll_interval": 1.0,
                             "timeout": 2.0},
            "webhook": {"host": "127.0.0.1", "port": self.port},
            "mapping": {"path": mapping_path},
            "publisher": {"send_retry": 1},
        }
        for section, values in dict(sections).items():
            config.setdefault(section, {}).update(values)
        self.config = config
        self.proc: subprocess.Popen | None = None
        self._log_handle = None
        self.rewrite_config()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rewrite_config(self, sections: Mapping[str, Mapping[str, Any]] = ()) -> None:
        for section, values in dict(sections).items():
            self.config.setdefault(section, {}).update(values)
        write_config(self.config_path, self.config)

    def start(self, *, wait_ready: bool = True, timeout: float = 30.0) -> RelayProcess:
        if self.proc is not None and self.proc.poll() is None:
            # A second daemon would replace self.proc and the first would never be stopped.
            raise RuntimeError(f"alarm-relay already running (pid {self.proc.pid})")
        self._log_handle = self.log_path.open("ab")
        inherited = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        env = {**inherited, "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = subprocess.Popen(
            [relay_script(), "--config-file", str(self.config_path)],
            stdout=self._log_handle, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
        _started.append(self.proc)
        if wait_ready:
            self.wait_for_log(READY_LINE, timeout=timeout)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, *, timeout: float = 30.0, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"alarm-relay exited with {self.proc.returncode} before logging "
                    f"{text!r}:\n{self.log()[-4000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"alarm-relay did not log {text!r} within {timeout}s:\n"
                           f"{self.log()[-4000:]}")

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` on /metrics whose labels include ``labels``."""
        status, body = self.get("/metrics")
        assert status == 200, status
        return metric_sum(body.decode(), name, **labels)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole process group (master and worker), as a crash would."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close_log()

    def stop(self, timeout: float = 40.0) -> int:
        """SIGTERM the master and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            self._close_log()
            return self.proc.returncode if self.proc else 0
        self.signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            self._close_log()
        # Workers share the process group; make sure none outlives the master.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return code

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> RelayProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop()
            except Exception:
                self.kill()
