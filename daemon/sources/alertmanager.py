"""The Alertmanager poller: ``GET /api/v2/alerts`` on every replica of a cluster.

One :class:`AlertmanagerPoller` polls the replicas of one Alertmanager cluster
(``[alertmanager] urls``) at a jittered interval, or at once when asked
(:meth:`AlertmanagerPoller.poll_now`, used after a webhook delivery).  Each
cycle gives one :class:`PollResult` with one :class:`ReplicaPoll` per replica
to the injected ``on_result`` callable.  The poller keeps no alert state.

What a cycle asks for, and why:

- ``active``, ``silenced``, ``inhibited`` and ``unprocessed`` are all sent as
  ``true``: leaving suppressed alerts out would make a silence look like a
  resolution.
- ``GET /api/v2/status`` is asked *after* the alert list, so an Alertmanager
  restart between the two requests shows up as a changed ``uptime``: the
  tracker then knows the replica forgot what it held.
- The ``Date`` header of the alert list gives the replica's clock offset
  (:attr:`ReplicaPoll.clock_offset`); an offset beyond
  ``[alertmanager] max_clock_offset`` is logged once as a warning, and every
  offset is the gauge ``alarm_relay_clock_offset_seconds{url}``.
- A replica whose request failed, timed out, or whose body did not decode as a
  list has ``alerts=None``: the tracker never resolves anything from it.
- Connection errors, 429 and 5xx are retried with jittered exponential backoff,
  within a deadline, so one cycle never takes longer than the poll interval.

This module is longer than the others (about 560 lines): a cycle's deadline
ties the scheduling (interval from the start of each cycle, waiting for an
outbox backlog) to the HTTP exchange of each replica (retries that stop before
the deadline, the ``Date`` header, the status after the alert list), and
splitting them would pass that deadline through an interface of its own.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import email.utils
import json
import random
import re
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import final

import aiohttp
import tenacity
from oslo_config import cfg
from oslo_log import log

from daemon import model, telemetry
from daemon.conf import alertmanager as alertmanager_conf
from daemon.exception import ConfigError, InvalidAlert
from daemon.model import PollResult, ReplicaPoll

__all__ = [
    "AlertmanagerPoller",
    "PollerSettings",
    "clock_offset",
    "display_url",
    "json_array_items",
]

LOG = log.getLogger(__name__)

#: Bodies larger than this are decoded and parsed in a worker thread, so the
#: event loop keeps serving the webhook while 50,000 alerts are read.
_OFFLOAD_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class PollerSettings:
    """How the replicas are polled (``[alertmanager]`` and ``[lifecycle]`` options).

    :raises ConfigError: on settings that cannot work together
    """

    poll_interval: float = 15.0
    poll_jitter: float = 0.1
    timeout: float = 10.0
    filters: tuple[str, ...] = ()
    receiver: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    bearer_token_file: str | None = None
    replica_labels: tuple[str, ...] = ()
    min_poll_gap: float = 1.0
    retry_max_wait: float = 2.0
    max_clock_offset: float = 5.0
    #: the option group these settings come from, named in errors
    group: str = "alertmanager"

    def __post_init__(self) -> None:
        group = self.group
        if self.poll_interval <= 0:
            raise ConfigError(group=group, option="poll_interval", problem="must be positive")
        if not 0 <= self.poll_jitter < 1:
            raise ConfigError(group=group, option="poll_jitter", problem="must be in [0, 1)")
        if self.timeout <= 0:
            raise ConfigError(group=group, option="timeout", problem="must be positive")
        if self.username and self.bearer_token_file:
            raise ConfigError(group=group, option="bearer_token_file",
                              problem="set either username/password or bearer_token_file")
        if self.key_file and not self.cert_file:
            raise ConfigError(group=group, option="key_file", problem="needs cert_file")

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts,
                  cluster: alertmanager_conf.ClusterConf | None = None) -> PollerSettings:
        """Build from one cluster's options and the ``[lifecycle]`` group.

        :param cluster: the cluster; by default the first one configured
        """
        cluster = cluster or alertmanager_conf.clusters(conf)[0]
        am = cluster.options
        return cls(
            group=cluster.group,
            poll_interval=am.poll_interval, poll_jitter=am.poll_jitter, timeout=am.timeout,
            filters=tuple(am.filter or ()), receiver=am.receiver or None,
            ca_file=am.ca_file, cert_file=am.cert_file, key_file=am.key_file,
            insecure=am.insecure, username=am.username, password=am.password,
            bearer_token_file=am.bearer_token_file,
            replica_labels=tuple(conf.lifecycle.replica_labels or ()),
            min_poll_gap=am.min_poll_gap, max_clock_offset=am.max_clock_offset)


def display_url(url: str) -> str:
    """``url`` without user info, for logs, metrics and events.

    :param url: a configured base URL, possibly with ``user:password@``
    """
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url.rstrip("/")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)).rstrip("/")


class _Retryable(Exception):
    """A failure worth another attempt (connection error, 429, 5xx)."""


class _Fatal(Exception):
    """A failure another attempt will not fix (4xx, a body that is no JSON list)."""


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@final
class AlertmanagerPoller:
    """Polls the replicas of one Alertmanager cluster and hands on each cycle.

    :param cluster: the cluster name (part of every alarm_id)
    :param urls: base URLs of the replicas, path prefix included
    :param settings: a :class:`PollerSettings`
    :param on_result: awaited with every :class:`PollResult`
    """

    def __init__(self, *, cluster: str, urls: Sequence[str], settings: PollerSettings,
                 on_result: Callable[[PollResult], Awaitable[None]]) -> None:
        if not urls:
            raise ConfigError(group=settings.group, option="urls", problem="no URL configured")
        self.cluster = cluster
        self.settings = settings
        self._on_result = on_result
        self._urls = tuple(u.rstrip("/") for u in urls)
        self._display = {u: display_url(u) for u in self._urls}
        if len(set(self._display.values())) != len(self._urls):
            raise ConfigError(group=settings.group, option="urls", problem="duplicate URL")
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._caches = {u: model.ParseCache(settings.replica_labels) for u in self._urls}
        self._up: dict[str, bool] = {}
        self._skewed: dict[str, bool] = {}
        self._wake: asyncio.Event | None = None
        self._last_poll = 0.0
        self._waiting_since: float | None = None  # polls wait for the outbox backlog
        self._params = self._query_params()

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts,
                  on_result: Callable[[PollResult], Awaitable[None]],
                  cluster: alertmanager_conf.ClusterConf | None = None) -> AlertmanagerPoller:
        """Build the poller of one configured cluster.

        :param cluster: the cluster; by default the first one configured
        :raises ConfigError: on options that cannot work
        """
        cluster = cluster or alertmanager_conf.clusters(conf)[0]
        return cls(cluster=cluster.name, urls=cluster.options.urls,
                   settings=PollerSettings.from_conf(conf, cluster), on_result=on_result)

    @property
    def urls(self) -> tuple[str, ...]:
        """The replicas' URLs as reported in results (credentials removed)."""
        return tuple(self._display[u] for u in self._urls)

    def _query_params(self) -> list[tuple[str, str]]:
        params = [("active", "true"), ("silenced", "true"), ("inhibited", "true"),
                  ("unprocessed", "true")]
        params.extend(("filter", f) for f in self.settings.filters)
        if self.settings.receiver:
            params.append(("receiver", self.settings.receiver))
        return params

    def _ssl(self) -> ssl.SSLContext | bool:
        s = self.settings
        if s.insecure:
            return False
        if not (s.ca_file or s.cert_file):
            return True
        context = ssl.create_default_context(cafile=s.ca_file)
        if s.cert_file:
            context.load_cert_chain(s.cert_file, s.key_file)
        return context

    async def start(self) -> None:
        """Open one HTTP session per replica (idempotent).

        :raises ConfigError: when the TLS files cannot be loaded
        """
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._sessions:
            return
        if self.settings.insecure:
            LOG.warning("TLS verification of Alertmanager is off ([alertmanager] insecure); "
                        "do not run this in production")
        try:
            ssl_arg = self._ssl()
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(group=self.settings.group, option="ca_file/cert_file",
                              problem=str(err)) from err
        headers = {"Accept": "application/json"}
        if self.settings.username:
            pair = f"{self.settings.username}:{self.settings.password or ''}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        for url in self._urls:
            self._sessions[url] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ssl_arg, limit=4),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
                headers=headers,
                raise_for_status=False)

    async def close(self) -> None:
        """Close the sessions (idempotent)."""
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

    async def __aenter__(self) -> AlertmanagerPoller:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __del__(self) -> None:  # pragma: no cover - diagnostics only
        if getattr(self, "_sessions", None):
            LOG.warning("AlertmanagerPoller for %s was not closed", self.cluster)

    def poll_now(self) -> None:
        """Ask for a cycle as soon as possible (coalesced, at most one per min_poll_gap)."""
        if self._wake is not None:
            self._wake.set()

    def next_delay(self) -> float:
        """Seconds to wait before the next cycle (the jittered poll interval)."""
        s = self.settings
        return s.poll_interval * (1.0 + random.uniform(-s.poll_jitter, s.poll_jitter))

    async def run(self, stop: asyncio.Event, *,
                  backlog: Callable[[], str | None] | None = None,
                  backlog_max_wait: float = 0.0) -> None:
        """Poll until ``stop`` is set; each result goes to ``on_result``.

        A failing ``on_result`` is logged; the next cycle brings the same
        alerts again, so nothing is lost.

        :param stop: set to end the loop
        :param backlog: asked before every cycle but the first: while it
            returns a reason (the relay is behind with publishing), the cycle
            waits, checked every second, at most ``backlog_max_wait`` seconds
        :param backlog_max_wait: longest wait of one cycle for ``backlog``
        """
        await self.start()
        assert self._wake is not None
        first = True
        while not stop.is_set():
            if not first and backlog is not None and backlog_max_wait > 0:
                await self._wait_for_backlog(stop, backlog, backlog_max_wait)
                if stop.is_set():
                    break
            first = False
            self._wake.clear()
            result = await self.poll_once()
            try:
                await self._on_result(result)
            except asyncio.CancelledError:
                raise
            except Exception:
                LOG.exception("Handling the poll of Alertmanager cluster %s failed; "
                              "the next poll retries", self.cluster)
            # The interval runs from the start of a cycle, as Prometheus's
            # scrape_interval does: a slow cycle does not push every later one
            # back, so an alert is seen within one interval plus one cycle.
            elapsed = time.monotonic() - self._last_poll
            await self._sleep(stop, max(0.0, self.next_delay() - elapsed))
            gap = self.settings.min_poll_gap - (time.monotonic() - self._last_poll)
            if gap > 0 and not stop.is_set():
                await self._sleep(stop, gap, wake=False)

    async def _wait_for_backlog(self, stop: asyncio.Event, backlog: Callable[[], str | None],
                                max_wait: float) -> None:
        """Wait while ``backlog()`` gives a reason, at most ``max_wait`` seconds.

        Logged once when polls start waiting and once when the backlog is
        gone, not at every cycle of a long broker outage.
        """
        reason = backlog()
        if reason is None:
            self._resume_after_backlog()
            return
        started = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = started
            LOG.info("Polls of Alertmanager cluster %s wait while %s (each one up "
                     "to %.0f s)", self.cluster, reason, max_wait)
        step = min(1.0, self.settings.poll_interval)
        while reason is not None and not stop.is_set():
            left = max_wait - (time.monotonic() - started)
            if left <= 0:
                break
            await self._sleep(stop, min(step, left), wake=False)
            reason = backlog()
        telemetry.POLL_WAIT.labels(cluster=self.cluster).inc(time.monotonic() - started)
        if reason is None:
            self._resume_after_backlog()

    def _resume_after_backlog(self) -> None:
        if self._waiting_since is None:
            return
        LOG.info("Polls of Alertmanager cluster %s are back to every %.1f s "
                 "(they waited for the outbox backlog for %.0f s)", self.cluster,
                 self.settings.poll_interval, time.monotonic() - self._waiting_since)
        self._waiting_since = None

    async def _sleep(self, stop: asyncio.Event, delay: float, wake: bool = True) -> None:
        assert self._wake is not None
        waiters = [asyncio.ensure_future(stop.wait())]
        if wake:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def poll_once(self) -> PollResult:
        """Poll every replica once, concurrently, within one poll interval.

        Never raises for a replica's failure: that replica gets ``alerts=None``.
        """
        await self.start()
        self._last_poll = time.monotonic()
        started_at = _utcnow()
        budget = max(self.settings.poll_interval, self.settings.timeout)
        deadline = time.monotonic() + budget
        token = self._read_token()
        replicas = await asyncio.gather(
            *(self._poll_replica(url, deadline, token) for url in self._urls))
        return PollResult(cluster=self.cluster, replicas=tuple(replicas),
                          started_at=started_at, finished_at=_utcnow())

    def _read_token(self) -> str | None:
        path = self.settings.bearer_token_file
        if not path:
            return None
        try:
            with open(path, encoding="utf-8") as token_file:
                return token_file.read().strip()
        except OSError as err:
            LOG.error("Cannot read [alertmanager] bearer_token_file %s: %s", path, err.strerror)
            return None

    async def _poll_replica(self, url: str, deadline: float, token: str | None) -> ReplicaPoll:
        shown = self._display[url]
        began = time.monotonic()
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                body, offset = await self._fetch(url, "/api/v2/alerts", self._params, headers,
                                                 deadline)
                if len(body) >= _OFFLOAD_BYTES:
                    alerts, invalid = await asyncio.to_thread(self._decode, url, body)
                else:
                    alerts, invalid = self._decode(url, body)
                uptime, cluster_status = await self._status(url, headers, deadline)
        except (_Retryable, _Fatal) as err:
            return self._failed(shown, str(err), began)
        except TimeoutError:
            return self._failed(shown, "timed out", began)
        duration = time.monotonic() - began
        telemetry.POLLS.labels(url=shown, outcome="success").inc()
        telemetry.POLL_DURATION.labels(url=shown).observe(duration)
        if self._up.get(url) is not True:
            LOG.info("Alertmanager %s is up (%d alerts, uptime %s)", shown, len(alerts), uptime)
            self._up[url] = True
        self._check_offset(url, offset)
        return ReplicaPoll(url=shown, alerts=alerts, error=None, uptime=uptime,
                           cluster_status=cluster_status, invalid=invalid,
                           clock_offset=offset)

    def _check_offset(self, url: str, offset: float | None) -> None:
        """Export the offset; warn once when it crosses max_clock_offset, and once when back."""
        if offset is None:
            return
        shown = self._display[url]
        telemetry.CLOCK_OFFSET.labels(url=shown).set(offset)
        limit = self.settings.max_clock_offset
        skewed = limit > 0 and abs(offset) > limit
        if skewed and not self._skewed.get(url):
            LOG.warning("The clock of Alertmanager %s is %+.1f s off the relay's (more than "
                        "[%s] max_clock_offset %.1f s): times in events are Alertmanager's, "
                        "and an endsAt counts as passed in its clock; run NTP on both hosts",
                        shown, offset, self.settings.group, limit)
        elif not skewed and self._skewed.get(url):
            LOG.info("The clock of Alertmanager %s is within %.1f s of the relay's again "
                     "(%+.1f s)", shown, limit, offset)
        self._skewed[url] = skewed

    def _failed(self, shown: str, error: str, began: float) -> ReplicaPoll:
        url = next(u for u, d in self._display.items() if d == shown)
        telemetry.POLLS.labels(url=shown, outcome="failure").inc()
        telemetry.POLL_DURATION.labels(url=shown).observe(time.monotonic() - began)
        if self._up.get(url) is not False:
            LOG.warning("Alertmanager %s is down: %s (its alerts are kept as they are)",
                        shown, error)
            self._up[url] = False
        else:
            LOG.debug("Alertmanager %s still down: %s", shown, error)
        return ReplicaPoll(url=shown, alerts=None, error=error, uptime=None)

    async def _fetch(self, url: str, path: str, params: list[tuple[str, str]] | None,
                     headers: dict[str, str] | None, deadline: float
                     ) -> tuple[bytes, float | None]:
        """GET with retries; the body and the server's clock offset (from ``Date``)."""
        session = self._sessions[url]
        target = url + path
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(_Retryable),
            wait=tenacity.wait_random_exponential(multiplier=0.1,
                                                  max=self.settings.retry_max_wait),
            stop=_stop_before(deadline),
            reraise=True)
        async for attempt in retrying:
            with attempt:
                return await self._get_once(session, target, params, headers, deadline)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get_once(self, session: aiohttp.ClientSession, target: str,
                        params: list[tuple[str, str]] | None,
                        headers: dict[str, str] | None, deadline: float
                        ) -> tuple[bytes, float | None]:
        remaining = deadline - time.monotonic()
        timeout = aiohttp.ClientTimeout(total=max(0.05, min(self.settings.timeout, remaining)))
        try:
            sent = time.time()
            async with session.get(target, params=params, headers=headers,
                                   timeout=timeout) as response:
                answered = time.time()
                if response.status == 429 or response.status >= 500:
                    raise _Retryable(f"HTTP {response.status} from {response.url.path}")
                if response.status != 200:
                    raise _Fatal(f"HTTP {response.status} from {response.url.path}")
                return await response.read(), clock_offset(
                    response.headers.get("Date"), sent, answered)
        except aiohttp.ClientResponseError as err:
            raise _Retryable(f"HTTP error: {err.status} {err.message}") from err
        except (aiohttp.ClientError, TimeoutError) as err:
            raise _Retryable(_describe(err)) from err

    def _decode(self, url: str, body: bytes) -> tuple[list[model.Alert], frozenset[str]]:
        cache = self._caches[url]
        try:
            # One object at a time: each is compared with its cached Alert and
            # dropped, so a poll never holds the whole decoded list (its peak
            # memory stays in the allocator after the poll, as resident memory)
            # and the collector never walks it.
            parsed = model.parse_alerts(json_array_items(body), cache=cache)
        except ValueError:
            # Not one well-formed array: json.loads says what is wrong, as before.
            try:
                objects = json.loads(body)
            except ValueError as err:
                raise _Fatal(f"response is not JSON: {err}") from err
            if type(objects) is not list:
                raise _Fatal("response is not a JSON list") from None
            parsed = model.parse_alerts(objects, cache=cache)
        cache.rotate()
        problems = parsed.problems
        if problems:
            first = problems[0]
            LOG.warning("%s", InvalidAlert(
                where=f"GET {self._display[url]}/api/v2/alerts [{first.index}]",
                problem=f"{first.field} {first.problem}"))
            telemetry.ALERTS_INVALID.labels(stage="poll").inc(len(problems))
            LOG.warning("GET %s/api/v2/alerts: %d invalid alerts skipped (kept as present "
                        "when their labels were readable)", self._display[url], len(problems))
        invalid = frozenset(p.fingerprint for p in problems if p.fingerprint is not None)
        return parsed.alerts, invalid

    async def _status(self, url: str, headers: dict[str, str] | None,
                      deadline: float) -> tuple[str | None, str | None]:
        try:
            body, _ = await self._fetch(url, "/api/v2/status", None, headers, deadline)
            status = json.loads(body)
        except (_Retryable, _Fatal, ValueError) as err:
            LOG.debug("GET %s/api/v2/status failed: %s", self._display[url], err)
            return None, None
        if type(status) is not dict:
            return None, None
        uptime = status.get("uptime")
        cluster = status.get("cluster")
        cluster_status = cluster.get("status") if type(cluster) is dict else None
        return (uptime if type(uptime) is str else None,
                cluster_status if type(cluster_status) is str else None)


_SCAN = json.JSONDecoder().scan_once
_SPACE = re.compile(r"[ \t\n\r]*")


def json_array_items(body: bytes) -> Iterator[object]:
    """The items of a JSON array, decoded one by one (as ``json.loads`` decodes them).

    :param body: the encoded array (UTF-8, -16 or -32, as ``json.loads`` takes)
    :raises ValueError: while iterating, when the body is not one well-formed
        JSON array (the items before the fault have been yielded)
    """
    text = body.decode(json.detect_encoding(body), "surrogatepass")
    space = _SPACE.match
    idx = space(text).end()
    if text[idx:idx + 1] != "[":
        raise ValueError("not a JSON array")
    idx = space(text, idx + 1).end()
    if text[idx:idx + 1] != "]":
        while True:
            try:
                item, idx = _SCAN(text, idx)
            except StopIteration as err:
                raise ValueError(f"no JSON value at {err.value}") from None
            yield item
            sep = text[idx:idx + 1]
            if sep not in (",", "]"):
                idx = space(text, idx).end()
                sep = text[idx:idx + 1]
            if sep == "]":
                break
            if sep != ",":
                raise ValueError(f"expected ',' or ']' at {idx}")
            idx += 1
            if text[idx:idx + 1] in _BLANKS:
                idx = space(text, idx).end()
    if space(text, idx + 1).end() != len(text):
        raise ValueError("extra data after the array")


_BLANKS = frozenset(" \t\n\r")


class _stop_before(tenacity.stop.stop_base):
    """Stop retrying when the next wait would cross the cycle's deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        upcoming = retry_state.upcoming_sleep or 0.0
        return time.monotonic() + upcoming >= self.deadline - 0.05


def clock_offset(date: str | None, sent: float, answered: float) -> float | None:
    """A server's clock minus ours, in seconds, from its HTTP ``Date`` header.

    The server stamps ``Date`` (whole seconds, the fraction cut off) at some
    moment between our sending the request and its headers arriving, so its
    clock minus ours lies in ``[Date - answered, Date + 1 - sent]``.  The
    offset returned is the point of that interval nearest zero: the smallest
    difference the evidence proves, 0 when the clocks may agree.  A slow
    answer (a list of 50,000 alerts takes seconds to encode) widens the
    interval instead of showing as a skew of half its duration.

    :param date: the header (RFC 9110 IMF-fixdate), or None
    :param sent: our time.time() when the request was sent
    :param answered: our time.time() when the response headers arrived
    :returns: seconds, or None without a readable header
    """
    if not date:
        return None
    try:
        stamp = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        return None
    if stamp.tzinfo is None:
        return None
    lowest = stamp.timestamp() - answered
    highest = stamp.timestamp() + 1.0 - sent
    return round(min(max(0.0, lowest), highest), 3)


def _describe(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "request timed out"
    text = str(err) or type(err).__name__
    return f"{type(err).__name__}: {text}"

