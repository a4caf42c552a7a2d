"""Resolve an alarm's resource (host FQDN, instance UUID) and enrich it from metrics.

:class:`DatasourceResolver` implements the transformer's ``Resolver`` protocol
over the backends of ``[datasources] metrics``, asked in that order: the first
backend that answers (even "nothing found") gives the answer; one that fails
is skipped for ``failure_backoff`` seconds.

What is looked up (decided by the request, see docs/aetos.md):

- **host FQDN** when a property ``host_id``, ``host`` or ``hostname`` has a
  value, or when the resource type is a host type (``host``, ``compute``,
  ``compute_host``, ``hypervisor``, ``node``) and the alert has an ``instance``
  label.  The value (``10.0.0.5:9100``, ``compute-1``) is looked up as the
  ``instance`` label of current series carrying ``fqdn_label``; failing that,
  its host part is matched against the known ``fqdn_label`` values, exactly or
  by short name.  Two FQDNs for one value is a collision: unresolved, with both
  named.
- **instance UUID** when the resource type is an instance type (``instance``,
  ``server``, ``vm``) or a property ``instance_name``/``instance_id`` is set:
  the alert's own ``instance_uuid_label`` if it has one, else the
  ``instance_uuid_label`` of current series whose ``instance_name_label``
  (libvirt's ``domain``) is the instance name, scoped to the alert's
  ``instance`` (the exporter) when it has one.  Two UUIDs is a collision.
- **enrichment**: each of the request's ``queries`` (name -> PromQL template)
  is rendered with the alert's labels, the mapping's properties and what was
  resolved (``host_fqdn``, ``instance_uuid``), values escaped, and run as an
  instant query.  ``metrics[name]`` is the value (a float; a list for several
  series; None for no data, with a reason in ``errors``).

Lookups are cached (``cache_ttl``; misses and collisions for the shorter
``negative_cache_ttl``; backend failures not at all), shared by concurrent
requests, and refreshed in the background by the one task :meth:`start`
creates.  ``resolve()`` never raises, returns within ``resolve_timeout``
(what is unknown by then is reported in ``errors``) and never touches the
alarm's identity: it only adds properties, a resource id and metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from oslo_config import cfg
from oslo_log import log

from daemon import telemetry
from daemon.datasources import promql
from daemon.datasources.base import Datasource, QueryRejected, QueryResult
from daemon.datasources.lookups import Lookup, explain_empty, find_host, find_instance
from daemon.exception import DatasourceError
from daemon.pipeline.resolution import Resolution, ResolveRequest

__all__ = [
    "HOST_TYPES",
    "INSTANCE_TYPES",
    "DatasourceResolver",
    "ResolverSettings",
]

LOG = log.getLogger(__name__)

HOST_TYPES = frozenset({"host", "compute", "compute_host", "hypervisor", "node"})
INSTANCE_TYPES = frozenset({"instance", "server", "vm"})
_HOST_PROPERTIES = ("host_id", "host", "hostname")
_INSTANCE_PROPERTIES = ("instance_name", "instance_id")

_T = TypeVar("_T")
TaskFactory = Callable[[Coroutine[Any, Any, Any]], asyncio.Task]


@dataclasses.dataclass(frozen=True, slots=True)
class ResolverSettings:
    """How long to wait and how long to remember (see [datasources])."""

    resolve_timeout: float = 3.0
    cache_ttl: float = 300.0
    negative_cache_ttl: float = 60.0
    refresh_interval: float = 60.0
    failure_backoff: float = 10.0
    instance_name_label: str = "domain"

    def __post_init__(self) -> None:
        if self.resolve_timeout <= 0:
            raise ValueError("resolve_timeout must be positive")
        if self.negative_cache_ttl > self.cache_ttl:
            raise ValueError("negative_cache_ttl must not exceed cache_ttl")
        if self.refresh_interval <= 0:
            raise ValueError("refresh_interval must be positive")

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> ResolverSettings:
        group = conf.datasources
        return cls(resolve_timeout=group.resolve_timeout, cache_ttl=group.cache_ttl,
                   negative_cache_ttl=min(group.negative_cache_ttl, group.cache_ttl),
                   refresh_interval=group.refresh_interval,
                   failure_backoff=group.failure_backoff,
                   instance_name_label=group.instance_name_label)


@dataclasses.dataclass(slots=True)
class _Entry:
    lookup: Lookup
    expires_at: float
    last_used: float


class _AllFailed(Exception):
    """Every backend failed or was skipped; ``reasons`` says why, per backend."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class DatasourceResolver:
    """The ``Resolver`` of the transformer, over one or more metrics backends.

    :param backends: asked in this order
    :param settings: timeouts, cache lifetimes, labels
    :param clock: monotonic clock (tests)
    """

    def __init__(self, backends: Sequence[Datasource], *,
                 settings: ResolverSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not backends:
            raise ValueError("at least one backend is needed")
        self.backends = tuple(backends)
        self.settings = settings or ResolverSettings()
        self._clock = clock
        self._cache: dict[tuple[str, ...], _Entry] = {}
        self._inflight: dict[tuple[str, ...], asyncio.Task[Lookup]] = {}
        self._fqdn_index: dict[str, tuple[float, frozenset[str]]] = {}
        self._down_until: dict[str, float] = {}
        self._last_error: dict[str, str] = {}
        self._tasks: set[asyncio.Task] = set()
        self._refresher: asyncio.Task | None = None
        self._started = False

    @property
    def name(self) -> str:
        """The backends in order, for logs (``aetos,prometheus``)."""
        return ",".join(b.NAME for b in self.backends)

    # -- lifecycle -------------------------------------------------------------

    async def start(self, *, task_factory: TaskFactory | None = None) -> None:
        """Open every backend and start the one background refresh task.

        :param task_factory: creates the refresh task (default
            ``asyncio.create_task``), for a service that tracks its tasks
        """
        if self._started:
            return
        for backend in self.backends:
            await backend.start()
        create = task_factory or asyncio.create_task
        self._refresher = create(self._refresh_loop())
        self._started = True
        LOG.info("Metrics resolver started with backends %s", self.name)

    async def close(self) -> None:
        """Stop the refresh task and pending lookups, close the backends; idempotent."""
        tasks = list(self._tasks)
        if self._refresher is not None:
            tasks.append(self._refresher)
            self._refresher = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._inflight.clear()
        for backend in self.backends:
            await backend.close()
        self._started = False

    async def __aenter__(self) -> DatasourceResolver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the Resolver protocol -------------------------------------------------

    async def resolve(self, request: ResolveRequest) -> Resolution:
        """Resolve and enrich one alarm's resource; never raises, honours the deadline.

        :param request: what the transformer knows about the alarm
        :returns: resolved properties, resource id, metrics and the reasons
            for anything left unresolved
        """
        started = self._clock()
        deadline = started + self.settings.resolve_timeout
        errors: list[str] = []
        properties: dict[str, Any] = {}
        metrics: dict[str, Any] = {}
        answered: set[str] = set()
        try:
            host_key, instance_key = self._plan(request)
            if host_key is None and instance_key is None and not request.queries:
                return Resolution()
            lookups: dict[str, Awaitable[Lookup]] = {}
            if host_key is not None:
                lookups["host_fqdn"] = self._cached(
                    ("host", host_key), lambda b: find_host(b, host_key, self._fqdns))
            if instance_key is not None:
                name, scope = instance_key
                lookups["instance_uuid"] = self._cached(
                    ("instance", name, scope or ""),
                    lambda b: find_instance(b, name, scope, self.settings.instance_name_label))
            found = await self._gather(lookups, deadline, errors)
            for prop, lookup in found.items():
                if lookup.backend:
                    answered.add(lookup.backend)
                if lookup.value is not None:
                    properties[prop] = lookup.value
                else:
                    errors.append(f"{prop}: {lookup.reason}")
            if request.queries:
                values = {**request.labels,
                          **{k: v for k, v in request.properties.items() if v is not None},
                          **properties}
                queries = {name: self._enrich(name, template, values)
                           for name, template in request.queries.items()}
                for name in request.queries:
                    metrics[name] = None
                for name, lookup in (await self._gather(queries, deadline, errors)).items():
                    if lookup.backend:
                        answered.add(lookup.backend)
                    metrics[name] = lookup.value
                    if lookup.reason:
                        errors.append(f"metrics.{name}: {lookup.reason}")
        except Exception as err:  # a resolver must never fail the event
            LOG.exception("Resolver failed unexpectedly")
            errors.append(f"resolver error: {err}")
        duration = self._clock() - started
        backend = next((b.NAME for b in self.backends if b.NAME in answered), "none")
        telemetry.RESOLVER_DURATION.labels(backend=backend).observe(duration)
        resource_id = self._resource_id(request, properties)
        if errors:
            LOG.debug("Resolution incomplete after %.3fs: %s", duration, "; ".join(errors))
        return Resolution(resource_id=resource_id, properties=properties,
                          metrics=metrics, errors=tuple(errors))

    # -- background refresh -----------------------------------------------------

    async def refresh_once(self) -> int:
        """Refresh cache entries about to expire and forget unused ones.

        Entries used within the last ``cache_ttl`` and expiring within the
        next ``refresh_interval`` are looked up again (so a busy alarm never
        waits for a lookup); the host index is reloaded with them.

        :returns: how many entries were refreshed
        """
        now = self._clock()
        horizon = now + self.settings.refresh_interval
        stale = [key for key, entry in self._cache.items()
                 if entry.expires_at <= now and now - entry.last_used > self.settings.cache_ttl]
        for key in stale:
            del self._cache[key]
        due = [key for key, entry in self._cache.items()
               if entry.expires_at <= horizon and key not in self._inflight]
        if not due:
            return 0
        self._fqdn_index.clear()
        refreshed = 0
        for key in due:
            entry = self._cache.get(key)
            if entry is None:
                continue
            try:
                lookup = await self._lookup_for_key(key)
            except _AllFailed as err:
                LOG.debug("Refresh of %s failed: %s", key, err)
                continue
            self._store(key, lookup, last_used=entry.last_used)
            refreshed += 1
        return refreshed

    async def _refresh_loop(self) -> None:
        # Warm up first (Keystone token and catalog), so the first alarm does not pay it.
        for backend in self.backends:
            try:
                await backend.warm_up()
            except DatasourceError as err:
                LOG.warning("Metrics backend %s is not ready: %s", backend.NAME, err)
        while True:
            await asyncio.sleep(self.settings.refresh_interval)
            try:
                count = await self.refresh_once()
                if count:
                    LOG.debug("Refreshed %d resolver cache entries", count)
            except Exception:  # the task must outlive any one failure
                LOG.exception("Resolver cache refresh failed")

    # -- planning ---------------------------------------------------------------

    def _plan(self, request: ResolveRequest
              ) -> tuple[str | None, tuple[str, str | None] | None]:
        """Decide what to look up: (host key, (instance name, exporter scope))."""
        rtype = (request.resource_type or "").lower()
        props = request.properties
        labels = request.labels
        host_key = next((props[p] for p in _HOST_PROPERTIES if props.get(p)), None)
        if host_key is None and rtype in HOST_TYPES:
            host_key = labels.get("instance") or None
        instance_key = None
        wants_instance = rtype in INSTANCE_TYPES or any(
            props.get(p) for p in _INSTANCE_PROPERTIES)
        if wants_instance:
            name = (props.get("instance_name") or props.get("instance_id")
                    or labels.get(self.settings.instance_name_label))
            if name:
                instance_key = (name, labels.get("instance") or None)
        return host_key, instance_key

    def _resource_id(self, request: ResolveRequest, found: Mapping[str, Any]) -> str | None:
        rtype = (request.resource_type or "").lower()
        if rtype in HOST_TYPES:
            return found.get("host_fqdn")
        if rtype in INSTANCE_TYPES:
            return found.get("instance_uuid")
        return found.get("instance_uuid") or found.get("host_fqdn")

    # -- waiting within the deadline -----------------------------------------

    async def _gather(self, jobs: Mapping[str, Awaitable[Lookup]], deadline: float,
                      errors: list[str]) -> dict[str, Lookup]:
        """Await ``jobs`` until ``deadline``; what is late is reported, not awaited."""
        if not jobs:
            return {}
        tasks = {name: asyncio.ensure_future(job) for name, job in jobs.items()}
        try:
            remaining = max(0.0, deadline - self._clock())
            done, _ = await asyncio.wait(tasks.values(), timeout=remaining)
        finally:
            for task in tasks.values():
                if not task.done():
                    task.cancel()
        results: dict[str, Lookup] = {}
        for name, task in tasks.items():
            if task not in done:
                telemetry.RESOLVER_FAILURES.labels(backend="deadline").inc()
                errors.append(f"{name}: no answer within "
                              f"{self.settings.resolve_timeout:g}s ({self._status()})")
                continue
            try:
                results[name] = task.result()
            except _AllFailed as err:
                errors.append(f"{name}: {err}")
        return results

    def _status(self) -> str:
        down = [f"{n} failing: {self._last_error[n]}" for n in self._down_until
                if self._down_until[n] > self._clock() and n in self._last_error]
        return "; ".join(down) if down else "backends slow"

    # -- caching ------------------------------------------------------------------

    async def _cached(self, key: tuple[str, ...],
                      find: Callable[[Datasource], Awaitable[Lookup]]) -> Lookup:
        now = self._clock()
        entry = self._cache.get(key)
        if entry is not None and entry.expires_at > now:
            entry.last_used = now
            return entry.lookup
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._ask(find))
            self._inflight[key] = task
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._finish(key, t))
        # Shielded: a caller's deadline must not cancel a lookup others share;
        # it completes in the background and fills the cache.
        return await asyncio.shield(task)

    def _finish(self, key: tuple[str, ...], task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if task.cancelled() or task.exception() is not None:
            return
        self._store(key, task.result(), last_used=self._clock())

    def _store(self, key: tuple[str, ...], lookup: Lookup, *, last_used: float) -> None:
        ttl = (self.settings.cache_ttl if lookup.value is not None
               else self.settings.negative_cache_ttl)
        if ttl > 0:
            self._cache[key] = _Entry(lookup, self._clock() + ttl, last_used)
        else:
            self._cache.pop(key, None)

    async def _lookup_for_key(self, key: tuple[str, ...]) -> Lookup:
        if key[0] == "host":
            return await self._ask(lambda b: find_host(b, key[1], self._fqdns))
        return await self._ask(lambda b: find_instance(b, key[1], key[2] or None,
                                                         self.settings.instance_name_label))

    # -- backends in order ----------------------------------------------------------

    async def _ask(self, find: Callable[[Datasource], Awaitable[Lookup]]) -> Lookup:
        """The first backend that answers gives the answer.

        :raises _AllFailed: every backend failed or is backing off
        """
        reasons: list[str] = []
        for backend in self.backends:
            name = backend.NAME
            now = self._clock()
            if self._down_until.get(name, 0.0) > now:
                reasons.append(f"{name} skipped after a failure "
                               f"{self.settings.failure_backoff:g}s ago or less: "
                               f"{self._last_error.get(name)}")
                continue
            try:
                lookup = await find(backend)
            except QueryRejected as err:
                # An answer: the query is wrong, the backend is fine.
                self._down_until.pop(name, None)
                return Lookup(None, str(err), backend=name)
            except DatasourceError as err:
                telemetry.RESOLVER_FAILURES.labels(backend=name).inc()
                self._last_error[name] = str(err)
                if self.settings.failure_backoff > 0:
                    self._down_until[name] = self._clock() + self.settings.failure_backoff
                LOG.warning("Metrics backend %s failed: %s", name, err)
                reasons.append(str(err))
                continue
            self._down_until.pop(name, None)
            return dataclasses.replace(lookup, backend=name)
        raise _AllFailed(reasons)

    # -- the lookups ----------------------------------------------------------------

    async def _fqdns(self, backend: Datasource) -> frozenset[str]:
        """All values of ``fqdn_label``, cached for ``negative_cache_ttl``."""
        now = self._clock()
        cached = self._fqdn_index.get(backend.NAME)
        if cached is not None and cached[0] > now:
            return cached[1]
        values = frozenset(await backend.label_values(backend.fqdn_label))
        ttl = self.settings.negative_cache_ttl or self.settings.cache_ttl
        self._fqdn_index[backend.NAME] = (now + ttl, values)
        return values

    async def _enrich(self, name: str, template: str, values: Mapping[str, Any]) -> Lookup:
        try:
            query = promql.render(template, values, name=name)
        except DatasourceError as err:
            return Lookup(None, str(err))

        async def run(backend: Datasource) -> Lookup:
            result: QueryResult = await backend.query(query)
            if result.empty:
                reason = f"no data for {query} ({backend.NAME})"
                return Lookup(None, await explain_empty(backend, reason))
            return Lookup(result.json_value())

        return await self._ask(run)
