"""Redis for tests: a namespace of one's own on the shared server, or a private server.

Relays coordinate through tooz (``[coordination] backend_url``, issue 15); Redis is the
backend tested. Two ways to get one:

- :class:`RedisNamespace` on the machine's shared Redis (127.0.0.1:6379, ``make services``):
  a unique key namespace, the tooz URL that uses it, and ``clean()`` deleting its keys. tooz's
  redis driver takes the namespace from the URL's ``namespace`` option (default ``_tooz``) and
  starts every key it writes with it (``NS_group:...``, ``NS_beats:...``, ``NS_groups``,
  ``NS_<name>_lock``), so nothing of other tests or people is touched.
- :class:`RedisServer`, a private ``redis-server`` on a free loopback port with its own work
  dir, for tests that stop, kill or restart Redis (never do that to the shared one).

The module is not called ``redis.py``: ``tools/harness`` is ``sys.path[0]`` when
``wsgi_serve.py`` runs as a script, and the redis package must stay importable there.
"""

from __future__ import annotations

import secrets
import urllib.parse
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tools.harness.ports import LOOPBACK, port_open
from tools.harness.services import Service

__all__ = [
    "REDIS_SERVER_BIN",
    "SHARED_REDIS_PORT",
    "RedisNamespace",
    "RedisServer",
    "RedisUnavailable",
    "tooz_url",
]

REDIS_SERVER_BIN = "/usr/bin/redis-server"
SHARED_REDIS_PORT = 6379
#: tooz's socket timeout in seconds (also its default membership and lock timeout).
TOOZ_TIMEOUT = 3


def _client(port: int) -> redis.Redis:
    # redis-py 8 retries a failed command 3 times with backoff by default; a test that
    # checks "Redis is down" wants the first failure.
    return redis.Redis(host=LOOPBACK, port=port, socket_timeout=5, socket_connect_timeout=5,
                       retry=Retry(NoBackoff(), 0))


class RedisUnavailable(RuntimeError):
    """The shared Redis does not answer; the message says what to run."""


def tooz_url(port: int, *, namespace: str | None = None, timeout: int = TOOZ_TIMEOUT,
             host: str = LOOPBACK) -> str:
    """A tooz coordination URL for the Redis on ``host:port``.

    :param namespace: tooz's key namespace (``namespace`` URL option); None keeps tooz's
        default ``_tooz``
    :param timeout: seconds (``timeout`` URL option: socket, membership and lock timeout)
    """
    options = {"timeout": str(timeout)}
    if namespace is not None:
        options["namespace"] = namespace
    return f"redis://{host}:{port}?{urllib.parse.urlencode(options)}"


class RedisNamespace:
    """A unique key namespace on the shared Redis; ``clean()`` deletes its keys.

    ``with RedisNamespace() as ns: ns.url`` gives the tooz URL; on exit the keys go.

    :param port: the shared Redis's port (6379)
    """

    def __init__(self, *, port: int = SHARED_REDIS_PORT, prefix: str = "relaytest") -> None:
        self.port = port
        self.name = f"{prefix}-{secrets.token_hex(6)}"
        self._client: redis.Redis | None = None

    @property
    def url(self) -> str:
        """tooz URL: ``redis://127.0.0.1:6379?timeout=3&namespace=NAME``."""
        return tooz_url(self.port, namespace=self.name)

    @property
    def pattern(self) -> str:
        """SCAN pattern of every key tooz writes in this namespace."""
        # The name is letters, digits and "-": nothing in it is a glob character. Every
        # tooz key is the name followed by "_" or ":", so "NAME[_:]*" cannot match the keys
        # of a namespace whose name merely starts with this one.
        return f"{self.name}[_:]*"

    @property
    def client(self) -> redis.Redis:
        """A redis-py client of the shared server (for tests that look at the keys)."""
        if self._client is None:
            self._client = _client(self.port)
        return self._client

    def open(self) -> RedisNamespace:
        """Check the shared Redis answers.

        :raises RedisUnavailable: it does not
        """
        try:
            self.client.ping()
        except redis.RedisError as err:
            raise RedisUnavailable(
                f"no Redis on {LOOPBACK}:{self.port} ({err}): run `make services`") from err
        return self

    def keys(self) -> list[bytes]:
        """The namespace's keys now."""
        return sorted(self.client.scan_iter(match=self.pattern, count=1000))

    def clean(self) -> int:
        """Delete the namespace's keys; return how many there were."""
        keys = self.keys()
        if keys:
            self.client.delete(*keys)
        return len(keys)

    def close(self) -> None:
        """Delete the keys and close the client. Idempotent."""
        if self._client is not None:
            try:
                self.clean()
            finally:
                self._client.close()
                self._client = None

    def __enter__(self) -> RedisNamespace:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RedisNamespace {self.name} on {LOOPBACK}:{self.port}>"


class RedisServer(Service):
    """A private ``redis-server`` on a free 127.0.0.1 port, data and log in its work dir.

    For coordination outage tests: ``stop()``, ``kill()`` (a crash), ``restart()`` on the same
    port. Like the shared server it keeps nothing by default, so a restart is an empty Redis
    (tooz's members and locks are gone); ``persist=True`` turns the append-only file on, so a
    restart keeps the keys.

    :param persist: keep the data across restarts (``appendonly yes`` in the work dir)
    """

    name = "redis"
    start_timeout = 15.0

    def __init__(self, *, persist: bool = False, port: int | None = None,
                 workdir: str | Path | None = None) -> None:
        super().__init__(port=port, workdir=workdir)
        self.persist = persist
        self.data_dir = self.workdir / "data"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` (redis-py's form; see :meth:`tooz_url` for tooz)."""
        return f"redis://{LOOPBACK}:{self.port}"

    def tooz_url(self, namespace: str | None = None, *, timeout: int = TOOZ_TIMEOUT) -> str:
        """tooz URL of this server (``?timeout=3``, and ``namespace`` when given)."""
        return tooz_url(self.port, namespace=namespace, timeout=timeout)

    def client(self) -> redis.Redis:
        """A new redis-py client of this server (close it when done)."""
        return _client(self.port)

    def prepare(self) -> None:
        self.data_dir.mkdir(exist_ok=True)

    def command(self) -> list[str]:
        return [
            REDIS_SERVER_BIN,
            "--bind", LOOPBACK,
            "--port", str(self.port),
            "--daemonize", "no",  # the process we started is the server: stop() reaches it
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--logfile", "",  # to stdout, which is our log file
            "--protected-mode", "yes",
        ]

    def is_ready(self) -> bool:
        if not port_open(self.port):
            return False
        with self.client() as client:
            return bool(client.ping())
