"""The ownership stage: which units this relay owns, claimed and fenced in the database.

Every ``[coordination] check_interval`` seconds the stage reads the live members
(:class:`~daemon.coordination.Coordinator`) and the owners recorded in the database
(``Store.owners()``), computes the assignment every member computes
(:func:`~daemon.coordination.assign`), and:

- claims each unit newly assigned here (``Store.claim``: the unit's epoch goes up by
  one and becomes the fencing token of every write for it), then hands it to the
  intake (load its state, track it) and the dispatcher (publish its backlog);
- claims a unit no one owns only from its second check on: relays started together
  (a cluster's first start, a reboot of all controllers) then see each other first and
  compute the same assignment, instead of each claiming what it saw as unowned while
  alone and the later claim fencing the earlier one;
- gives up each unit assigned elsewhere; a unit moving from one live member to
  another (a relay joined) is claimed by its new owner only after two checks, by
  when the previous owner has seen the same assignment and let it go, so a
  rebalance hands over instead of fencing (a dead owner's units are claimed at once);
- checks each unit it owns with an empty write fenced with its epoch (``verify``):
  a unit claimed by another relay since is refused, counted as a fenced write, and
  stepped down from, even when this relay had nothing else to write.

When the coordination backend does not answer, nothing is claimed and the units
owned stay owned as long as the database's fencing says so. When it answers again
(a restarted Redis has forgotten every member), units recorded under another relay
are not claimed for ``settle`` seconds (the lease), so that the relays that own
them have rejoined first and nothing moves for nothing: a write refused with
:class:`~daemon.exception.FencedWrite` (another relay claimed the unit) makes the
intake drop the unit at once and this stage step down from it. No unit gets two
owners that can both write.

One INFO line per ownership change; the stage writes ``alarm_relay_owned_units``
and ``alarm_relay_ownership_changes_total``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from oslo_log import log

from daemon import exception, telemetry
from daemon.coordination import Coordinator, assign
from daemon.store import Store

__all__ = ["Ownership"]

LOG = log.getLogger(__name__)

T = TypeVar("T")


class Ownership:
    """Keeps this relay's units in step with the group and the database.

    :param coordinator: the group membership (started by :meth:`start`)
    :param store: the shared store (``claim``, ``owners``), called in ``db_executor``
    :param db_executor: the store's one thread
    :param units: every unit of the deployment
    :param check_interval: seconds between two checks
    :param on_take: awaited with ``(unit, epoch)`` after a claim (the intake loads the
        unit); an error there gives the unit up again
    :param on_release: awaited with a unit given up
    :param on_change: called with the set of units owned after every change (the
        dispatcher's filter)
    :param settle: seconds after the backend answers again during which no unit
        recorded under another relay is claimed (``[coordination] lease``)
    :param verify: awaited with a unit owned: False when a fenced write says another
        relay claimed it (the intake's :meth:`~daemon.intake.Intake.verify`, which
        then calls :meth:`fenced`)
    """

    def __init__(self, coordinator: Coordinator, store: Store, *,
                 db_executor: concurrent.futures.Executor, units: Sequence[str],
                 check_interval: float,
                 on_take: Callable[[str, int], Awaitable[Any]],
                 on_release: Callable[[str], Awaitable[Any]],
                 on_change: Callable[[frozenset[str]], None] = lambda units: None,
                 verify: Callable[[str], Awaitable[bool]] | None = None,
                 settle: float = 0.0) -> None:
        self.coordinator = coordinator
        self.member_id = coordinator.member_id
        self._store = store
        self._executor = db_executor
        self._units = list(units)
        self._interval = check_interval
        self._on_take = on_take
        self._on_release = on_release
        self._on_change = on_change
        self._verify = verify
        self._settle = settle
        self._settle_until = 0.0
        self._joined_at = 0.0
        self._waiting: dict[str, float] = {}  # unit -> when first assigned here from a live owner
        self._backend_down = False
        self._database_down = False
        self._tasks: set[asyncio.Task] = set()
        self.owned: dict[str, int] = {}
        self.owners: dict[str, tuple[str, int]] = {}
        self._lock = asyncio.Lock()
        telemetry.OWNED_UNITS.set(0)

    # -- what /readyz and the logs show ----------------------------------------

    def details(self) -> dict[str, Any]:
        """``{"member", "members", "owned": {unit: epoch}, "healthy"}`` for ``/readyz``."""
        return {"member": self.member_id,
                "members": sorted(self.coordinator.members),
                "owned": dict(sorted(self.owned.items())),
                "backend_ok": self.coordinator.healthy}

    # -- running -----------------------------------------------------------------

    async def start(self) -> None:
        """Join the group and take the units assigned here that another relay owned
        (one check); units no one owns yet are claimed from the next check on."""
        await self.coordinator.start()
        self._joined_at = asyncio.get_running_loop().time()
        await self.check()

    async def run(self) -> None:
        """Check every ``check_interval`` seconds, until cancelled.

        The heartbeat has a timer of its own: a check can wait behind a busy
        intake (a storm's observation holds the unit's lock for seconds) or the
        database thread, and a live relay must not lose its membership then.
        """
        beating = asyncio.ensure_future(self._beat_forever())
        try:
            while True:
                await asyncio.sleep(self._interval)
                try:
                    await self.check()
                except Exception:
                    LOG.exception("Ownership check failed")
        finally:
            beating.cancel()

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.coordinator.heartbeat()
            except exception.CoordinationError:
                pass  # the next check notes the outage and logs it once

    async def stop(self) -> None:
        """Leave the group, so the others take the units over without waiting for the
        lease. The database keeps this relay as owner until they claim."""
        for unit in list(self.owned):
            self._drop(unit)
            telemetry.OWNERSHIP_CHANGES.labels(change="released").inc()
        LOG.info("Ownership: leaving the group, every unit released")
        self._publish_change()
        await self.coordinator.stop()

    def fenced(self, unit: str) -> None:
        """The intake's write for ``unit`` was fenced: step down (the intake already
        dropped it). Safe to call from the loop at any time."""
        epoch = self.owned.get(unit)
        if epoch is None:
            return
        self._drop(unit)
        telemetry.OWNERSHIP_CHANGES.labels(change="fenced").inc()
        LOG.info("Ownership: stepped down from unit %s (epoch %d): another relay claimed it",
                 unit, epoch)
        self._publish_change()
        task = asyncio.get_running_loop().create_task(self._release_quietly(unit))
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    async def check(self) -> None:
        """One round: read owners and members, then claim and give up units."""
        async with self._lock:
            await self._check()

    async def _check(self) -> None:
        loop = asyncio.get_running_loop()
        # The heartbeat first: a busy database thread must not make this relay miss
        # its lease.
        members: frozenset[str] | None
        try:
            members = await self.coordinator.refresh()
        except exception.CoordinationError:
            members = None
            self._backend_down = True
        # Fencing is the truth: a unit another relay claimed since is given up here,
        # also while the coordination backend does not answer.
        if self._verify is not None:
            for unit in list(self.owned):
                try:
                    await self._verify(unit)
                except exception.AlarmRelayError as err:
                    self._database_failed(err)
                    return
        if members is None:
            return  # keep what the database still says is ours; claim nothing
        try:
            self.owners = await self._db(self._store.owners)
        except exception.AlarmRelayError as err:
            self._database_failed(err)
            return
        if self._database_down:
            self._database_down = False
            LOG.info("Ownership checks resume: the database answers again")
        if self._backend_down:
            self._backend_down = False
            self._settle_until = loop.time() + self._settle
        settling = loop.time() < self._settle_until
        previous = {unit: owner for unit, (owner, _) in self.owners.items()}
        target = assign(self._units, members, previous)
        for unit in sorted(self.owned):
            owner = target.get(unit)
            if owner != self.member_id:
                await self._give_up(unit, "released", f"assigned to {owner}")
        now = loop.time()
        wanted = sorted(u for u, m in target.items() if m == self.member_id)
        self._waiting = {u: t for u, t in self._waiting.items() if u in wanted}
        for unit in wanted:
            if unit in self.owned:
                continue
            owner = previous.get(unit)
            if owner is None and now - self._joined_at < self._interval / 2:
                continue  # just joined: a relay started with this one may not be listed yet
            if settling and owner not in (None, self.member_id):
                continue  # its owner may not have rejoined yet
            if owner not in (None, self.member_id) and owner in members:
                # A live owner gives it up at its next check: let it, then claim.
                since = self._waiting.setdefault(unit, now)
                if now - since < 2 * self._interval:
                    continue
            self._waiting.pop(unit, None)
            await self._take(unit, owner)

    async def _take(self, unit: str, previous: str | None) -> None:
        try:
            epoch = await self._db(self._store.claim, unit, self.member_id)
        except exception.AlarmRelayError as err:
            LOG.warning("Claiming unit %s failed, trying again at the next check: %s",
                        unit, err)
            return
        try:
            firing = await self._on_take(unit, epoch)
        except Exception as err:
            LOG.warning("Taking unit %s over failed, trying again at the next check: %s",
                        unit, err)
            await self._release_quietly(unit)
            return
        self.owned[unit] = epoch
        self.owners[unit] = (self.member_id, epoch)
        telemetry.OWNERSHIP_CHANGES.labels(change="taken").inc()
        LOG.info("Ownership: took unit %s at epoch %d from %s (%s alarms firing)", unit, epoch,
                 previous or "no one", firing if firing is not None else "?")
        self._publish_change()

    async def _give_up(self, unit: str, change: str, why: str) -> None:
        epoch = self.owned.get(unit)
        if epoch is None:
            return
        self._drop(unit)
        await self._release_quietly(unit)
        telemetry.OWNERSHIP_CHANGES.labels(change=change).inc()
        LOG.info("Ownership: gave up unit %s (epoch %d): %s", unit, epoch, why)
        self._publish_change()

    def _database_failed(self, err: Exception) -> None:
        # Once per outage; the units stay where they are meanwhile.
        if not self._database_down:
            LOG.warning("Ownership checks wait, the database did not answer: %s; the units "
                        "stay where they are", err)
        self._database_down = True

    def _drop(self, unit: str) -> None:
        self.owned.pop(unit, None)
        telemetry.OWNED_UNITS.set(len(self.owned))

    async def _release_quietly(self, unit: str) -> None:
        try:
            await self._on_release(unit)
        except Exception:
            LOG.exception("Releasing unit %s failed", unit)

    def _publish_change(self) -> None:
        telemetry.OWNED_UNITS.set(len(self.owned))
        self._on_change(frozenset(self.owned))

    async def _db(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)
