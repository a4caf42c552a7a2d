"""Collector pauses of a process, for a benchmark (``bench_storm.py --gc-stats``).

Put this directory on ``PYTHONPATH`` with ``BENCH_GC_STATS`` naming a file: every process
that starts writes there (one JSON line per second, by process id) how many collections of
each generation it made and how long they held the interpreter.  Not part of the daemon.

For experiments: ``BENCH_GC_FULL_LOG`` (with ``BENCH_GC_STATS``) names a file that gets one
line per full collection, with the objects left in the oldest generation (counting them adds
to the pause, after it was timed); ``BENCH_GC_THRESHOLD`` ("700,10,10") and
``BENCH_SWITCH_INTERVAL`` (seconds) change the collector's thresholds and the interpreter's
switch interval.
"""

import gc
import json
import os
import threading
import time

_PATH = os.environ.get("BENCH_GC_STATS")
_THRESHOLD = os.environ.get("BENCH_GC_THRESHOLD")  # "gen0,gen1,gen2": an experiment's
if _THRESHOLD:
    gc.set_threshold(*(int(v) for v in _THRESHOLD.split(",")))
_FULL_LOG = os.environ.get("BENCH_GC_FULL_LOG")  # one line per full collection
_SWITCH = os.environ.get("BENCH_SWITCH_INTERVAL")  # seconds: an experiment's
if _SWITCH:
    import sys
    sys.setswitchinterval(float(_SWITCH))
if _PATH:
    _stats = {"collections": [0, 0, 0], "seconds": [0.0, 0.0, 0.0], "max_s": [0.0, 0.0, 0.0],
              "collected": 0}
    _began: list[float] = [0.0]

    def _callback(phase: str, info: dict) -> None:
        if phase == "start":
            _began[0] = time.perf_counter()
            return
        took = time.perf_counter() - _began[0]
        gen = info["generation"]
        _stats["collections"][gen] += 1
        _stats["seconds"][gen] += took
        _stats["max_s"][gen] = max(_stats["max_s"][gen], took)
        _stats["collected"] += info.get("collected", 0)
        if _FULL_LOG and gen == 2:
            # What a full collection walked: the objects left in the oldest generation.
            with open(_FULL_LOG, "a", encoding="utf-8") as out:
                out.write(json.dumps({"pid": os.getpid(), "t": time.time(),
                                      "took": took, "gen2": len(gc.get_objects(2)),
                                      "frozen": gc.get_freeze_count()}) + "\n")

    def _writer() -> None:
        while True:
            time.sleep(1.0)
            line = json.dumps({"pid": os.getpid(), "t": time.time(), **_stats})
            with open(_PATH, "a", encoding="utf-8") as out:
                out.write(line + "\n")

    def _start() -> None:
        threading.Thread(target=_writer, daemon=True, name="gc-stats").start()

    def _forked() -> None:  # the daemon's worker is forked: count it from zero, on its own
        _stats.update(collections=[0, 0, 0], seconds=[0.0, 0.0, 0.0], max_s=[0.0, 0.0, 0.0],
                      collected=0)
        _start()

    gc.callbacks.append(_callback)
    os.register_at_fork(after_in_child=_forked)
    _start()
