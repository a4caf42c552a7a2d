"""A publishing child process: ``python -m daemon.publish.child FD``.

Started by :class:`daemon.publish.process.ProcessSender`, never by hand. It
reads its options and then jobs from the socket ``FD``, sends each job with
:func:`daemon.publish.sender.send_job` in one of its threads, and answers with
what the broker confirmed (the protocol is in daemon/publish/process.py). It
ends when the socket closes or says ``None``, after its sends in flight.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from oslo_config import cfg
from oslo_log import log

from daemon import conf as relay_conf
from daemon import exception
from daemon.publish.notifier import Notifier
from daemon.publish.process import register_messaging_opts
from daemon.publish.sender import JobResult, send_job

LOG = log.getLogger(__name__)

#: Seconds the sends in flight get once the input ended; then the process exits.
STOP_GRACE = 30.0


def build_conf(options: dict[str | None, dict[str, Any]]) -> cfg.ConfigOpts:
    """A ConfigOpts holding ``options`` (:func:`~daemon.publish.process.notifier_options`).

    No file is read: every value comes from the worker, which read the files.
    """
    conf = cfg.ConfigOpts()
    relay_conf.register_opts(conf)
    log.register_options(conf)
    relay_conf.set_defaults(conf)
    register_messaging_opts(conf)
    conf([], project=relay_conf.PROJECT, default_config_files=[], default_config_dirs=[])
    for group, values in options.items():
        for name, value in values.items():
            try:
                conf.set_override(name, value, group=group)
            except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
                continue  # an option this process does not use (a CLI option)
    return conf


def serve(conn: Connection) -> int:
    """Publish the jobs read from ``conn`` until it ends; the exit code."""
    options, threads = conn.recv()
    conf = build_conf(options)
    log.setup(conf, relay_conf.PROJECT)
    notifier = Notifier(conf)
    try:
        notifier.open()
    except Exception as err:  # the worker logs it and tries again later
        conn.send(("failed", notifier.scrub(f"{type(err).__name__}: {err}")))
        return 1
    conn.send(("ready", None))
    replies = threading.Lock()

    def reply(job_id: int, fut: concurrent.futures.Future[JobResult]) -> None:
        sent, err = fut.result()
        failure = None
        if err is not None:
            if isinstance(err, exception.PublishError):
                failure = (str(err.kwargs.get("problem", err)), err.recoverable)
            else:
                failure = (f"{type(err).__name__}: {err}", True)
        try:
            with replies:
                conn.send((job_id, sent, failure))
        except OSError:
            pass  # the worker is gone: it sends these again after its restart

    pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="alarm-relay-publish")
    try:
        while True:
            try:
                item = conn.recv()
            except (EOFError, OSError):
                break
            if item is None:
                break
            job_id, job = item
            fut = pool.submit(send_job, notifier.publish, job)
            fut.add_done_callback(lambda f, job_id=job_id: reply(job_id, f))
    finally:
        # The worker is gone or stopping: the sends in flight may finish, but a
        # send that hangs (a blocked connection) must not keep this process alive.
        deadline = threading.Timer(STOP_GRACE, os._exit, (0,))
        deadline.daemon = True
        deadline.start()
        pool.shutdown(wait=True)
        notifier.close()
        conn.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m daemon.publish.child FD (started by alarm-relay, "
              "not by hand)", file=sys.stderr)
        return 2
    # The worker decides when publishing stops: it closes the socket.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return serve(Connection(int(args[0])))


if __name__ == "__main__":
    sys.exit(main())
