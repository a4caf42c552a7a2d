"""Benchmark: process start to ready.

``alarm-relay --config-file`` started as a process (tools/harness/relay.py) with a real
Alertmanager up and the shared RabbitMQ; timed from just before the process is spawned to

- ``log_ready``: the "alarm-relay ready" log line, and
- ``readyz``: the first ``GET /readyz`` answering 200 (mapping loaded, outbox writable,
  Alertmanager answered) - the figure;

median (and max) of ``--runs`` starts, each stopped with SIGTERM before the next.  Baseline:
``python -c "import daemon.service"`` in a fresh interpreter (what importing the daemon and
its libraries costs, the floor of any start), median of the same number of runs.
Target: readyz median <= 2 s.

    python benchmarks/bench_startup.py [--runs 5]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.common import log  # noqa: E402
from tools.harness.relay import READY_LINE, RelayProcess  # noqa: E402
from tools.harness.services import Alertmanager, shared_transport_url  # noqa: E402

TARGET_S = 2.0


def readyz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def one_start(relay: RelayProcess, timeout: float = 30.0) -> tuple[float, float]:
    """Seconds from spawn to the ready log line and to /readyz 200."""
    began = time.monotonic()
    relay.start(wait_ready=False)
    logged = ready = None
    deadline = began + timeout
    while time.monotonic() < deadline and (logged is None or ready is None):
        now = time.monotonic()
        if logged is None and READY_LINE in relay.log():
            logged = now
        if ready is None and readyz(relay.port):
            ready = now
        if relay.proc.poll() is not None:
            raise RuntimeError(f"alarm-relay exited {relay.proc.returncode}:\n"
                               f"{relay.log()[-3000:]}")
        time.sleep(0.01)
    relay.stop()
    if logged is None or ready is None:
        raise TimeoutError(f"alarm-relay not ready within {timeout}s")
    return logged - began, ready - began


def import_floor() -> float:
    began = time.monotonic()
    subprocess.run([sys.executable, "-c", "import daemon.service"], check=True,
                   cwd=common.ROOT)
    return time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    common.add_relay_option_argument(parser)
    args = parser.parse_args(argv)
    extra = common.relay_options(parser, args.relay_option)
    rabbit = shared_transport_url()
    logged, ready, floor = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        workdir = Path(tmp)
        mapping = common.write_mapping(workdir)
        name = common.unique_name("bench-startup")
        with Alertmanager(workdir=workdir / "am") as am:
            import_floor()  # warm the page cache once, for both
            for run in range(args.runs):
                relay = RelayProcess(
                    mapping_path=mapping, transport_url=rabbit, alertmanager_urls=[am.url],
                    workdir=workdir / f"relay-{run}",
                    sections=common.with_relay_options(
                        {"DEFAULT": {"control_exchange": f"{name}-x"},
                         "oslo_messaging_notifications": {"topics": name}}, extra))
                try:
                    log_s, ready_s = one_start(relay)
                finally:
                    if relay.proc is not None and relay.proc.poll() is None:
                        relay.kill()
                logged.append(log_s)
                ready.append(ready_s)
                floor.append(import_floor())
                log(f"run {run + 1}: ready line {log_s:.2f}s, /readyz 200 {ready_s:.2f}s, "
                    f"import floor {floor[-1]:.2f}s")
        common.delete_entities(rabbit, exchanges=[f"{name}-x"])
    median = statistics.median(ready)
    common.emit({
        "benchmark": "startup", "runs": args.runs,
        "readyz_median_s": round(median, 3), "readyz_max_s": round(max(ready), 3),
        "log_ready_median_s": round(statistics.median(logged), 3),
        "import_floor_median_s": round(statistics.median(floor), 3),
        "ratio": round(median / statistics.median(floor), 2),
        "readyz_all_s": [round(x, 3) for x in ready],
        "target_s": TARGET_S, "target_met": median <= TARGET_S,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
