"""Group membership over tooz, and the pure rules that share the units among members.

Several relays (``[coordination] backend_url``) join the tooz group ``alarm-relay``. The
ownership unit is an Alertmanager cluster, or one of its ``[coordination] partitions``
hash partitions (:func:`unit_name`, :func:`partition_of`). :func:`assign` shares the
units over the live members, balanced and sticky, the way tooz's partitioner or a hash
ring does: every member computes the same answer from the same members and the owners
recorded in the database, so no one has to be elected.

:class:`Coordinator` wraps the blocking tooz driver: every call runs in a thread of its
own, never on the event loop. Who owns what is decided by the ownership stage
(daemon/ownership.py), which fences every write with the unit's epoch in the database;
the membership seen here is only the hint of who is alive.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import zlib
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from oslo_log import log

from daemon import exception

__all__ = ["Coordinator", "assign", "cluster_units", "group_members", "outbox_units",
           "partition_of", "unit_name"]

LOG = log.getLogger(__name__)

T = TypeVar("T")

#: The tooz group every relay of a deployment joins.
GROUP = "alarm-relay"


# -- the units ------------------------------------------------------------------


def unit_name(cluster: str, partition: int, partitions: int = 1) -> str:
    """The ownership unit of one partition of a cluster.

    :param cluster: the Alertmanager cluster's name
    :param partition: 0 .. ``partitions - 1``
    :param partitions: ``[coordination] partitions``
    :returns: the cluster's name when ``partitions`` is 1, else ``"<cluster>/<partition>"``
    """
    if partitions == 1:
        return cluster
    if not 0 <= partition < partitions:
        raise ValueError(f"partition {partition} not in 0..{partitions - 1}")
    return f"{cluster}/{partition}"


def cluster_units(cluster: str, partitions: int = 1) -> list[str]:
    """Every unit of a cluster, in partition order."""
    return [unit_name(cluster, p, partitions) for p in range(partitions)]


def outbox_units(owned: Collection[str], partitions: int) -> frozenset[str]:
    """The outbox units a relay owning ``owned`` publishes.

    With partitions, the owner of a cluster's partition 0 also publishes the events
    stored under the cluster's own name: those a single relay left (``db copy`` gives
    them their cluster as unit) or written while ``partitions`` was 1.
    """
    units = set(owned)
    if partitions > 1:
        units.update(unit[:-2] for unit in owned if unit.endswith("/0"))
    return frozenset(units)


def partition_of(fingerprint: str, partitions: int) -> int:
    """The partition of an alarm: CRC-32 of its fingerprint modulo ``partitions``.

    Stable across processes and releases (unlike ``hash()``), so every member puts an
    alert in the same partition.
    """
    if partitions == 1:
        return 0
    return zlib.crc32(fingerprint.encode()) % partitions


def _rank(unit: str, member: str) -> int:
    # Rendezvous (highest random weight) order: spreads the units that have to move,
    # the same way on every member.
    return zlib.crc32(f"{unit}\x00{member}".encode())


def assign(units: Collection[str], members: Collection[str],
           previous: Mapping[str, str] | None = None) -> dict[str, str]:
    """Share ``units`` among ``members``, balanced and sticky.

    Balanced: every member gets ``floor(n/m)`` or ``ceil(n/m)`` units (n units, m
    members). Sticky: a unit stays with its previous owner while that owner is a member
    and does not hold more than its share; only the units above a member's share, and
    the units of members gone, move. The result depends only on the arguments, so every
    member computes the same one.

    :param units: unit names
    :param members: live member ids
    :param previous: unit -> its owner so far (other units and owners are ignored)
    :returns: unit -> member; empty when there is no member
    """
    alive = sorted(set(members))
    if not alive:
        return {}
    ordered = sorted(set(units))
    base, extra = divmod(len(ordered), len(alive))
    previous = previous or {}
    held: dict[str, list[str]] = {member: [] for member in alive}
    for unit in ordered:
        owner = previous.get(unit)
        if owner in held:
            held[owner].append(unit)
    # The members already holding the most get the `extra` larger shares: fewer moves.
    by_holding = sorted(alive, key=lambda member: (-len(held[member]), member))
    capacity = {member: base + (1 if index < extra else 0)
                for index, member in enumerate(by_holding)}
    result: dict[str, str] = {}
    for member in alive:
        # Which of its units a member over its share keeps: the rendezvous order again.
        kept = sorted(held[member], key=lambda unit: -_rank(unit, member))[:capacity[member]]
        for unit in kept:
            result[unit] = member
        capacity[member] -= len(kept)
    for unit in ordered:
        if unit in result:
            continue
        member = max((m for m in alive if capacity[m] > 0), key=lambda m: (_rank(unit, m), m))
        result[unit] = member
        capacity[member] -= 1
    return result


# -- membership -----------------------------------------------------------------


class Coordinator:
    """Membership of this relay in the tooz group, off the event loop.

    :param backend_url: the tooz URL (``[coordination] backend_url``; holds secrets,
        never logged)
    :param member_id: this relay's id in the group (``<host>-<pid>``)
    :param lease: seconds a member stays in the group without a heartbeat (passed
        to tooz as ``membership_timeout``)
    :param group: the tooz group
    :param factory: builds the tooz coordinator (``tooz.coordination.get_coordinator``
        by default; tests pass their own)
    """

    def __init__(self, backend_url: str, member_id: str, *, lease: float,
                 group: str = GROUP,
                 factory: Callable[..., Any] | None = None) -> None:
        self.member_id = member_id
        self.group = group
        self._url = backend_url
        self._lease = lease
        self._factory = factory
        self._tooz: Any = None
        self._joined = False
        # tooz drivers are not thread-safe: one thread makes every call.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="alarm-relay-tooz")
        self.members: frozenset[str] = frozenset()
        self.healthy = False
        self._stopped = False
        self._problem: str | None = None

    async def start(self) -> None:
        """Connect and join the group.

        A backend that does not answer yet is logged, not raised: :meth:`refresh`
        keeps trying, and the relay starts as a standby meanwhile.
        """
        try:
            await self._call(self._connect)
        except exception.CoordinationError as err:
            self._note_failure(err)

    async def refresh(self) -> frozenset[str]:
        """Heartbeat, then read the live members (rejoining if the backend forgot us).

        :returns: the member ids, this one included
        :raises CoordinationError: the backend does not answer; :attr:`members`
            keeps the last answer
        """
        try:
            members = await self._call(self._refresh)
        except exception.CoordinationError as err:
            self._note_failure(err)
            raise
        if self._problem is not None:
            LOG.info("Coordination backend answers again: %d members", len(members))
        self.healthy = True
        self._problem = None
        self.members = members
        return members

    async def heartbeat(self) -> None:
        """Renew this relay's membership (nothing before :meth:`start` connected).

        :raises CoordinationError: the backend does not answer
        """
        await self._call(self._beat)

    async def stop(self) -> None:
        """Leave the group (the others take over at once) and disconnect. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            await self._call(self._leave)
        except exception.CoordinationError as err:
            LOG.warning("Leaving the coordination group failed (%s); the other members "
                        "see this relay leave when its lease runs out", err)
        finally:
            self._executor.shutdown(wait=False)

    # -- the tooz thread ---------------------------------------------------------

    async def _call(self, func: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._guard, func)

    @staticmethod
    def _guard(func: Callable[[], T]) -> T:
        from tooz import ToozError

        try:
            return func()
        except ToozError as err:
            raise exception.CoordinationError(problem=_describe(err)) from err
        except OSError as err:
            raise exception.CoordinationError(problem=str(err)) from err

    def _connect(self) -> None:
        from tooz import coordination

        if self._tooz is None:
            factory = self._factory or coordination.get_coordinator
            self._tooz = factory(self._url, self.member_id.encode(),
                                 membership_timeout=self._lease)
            _fail_fast(self._tooz)
        if not self._started():
            self._tooz.start(start_heart=False)
        self._join()

    def _started(self) -> bool:
        return bool(getattr(self._tooz, "is_started", False))

    def _join(self) -> None:
        from tooz import coordination

        group = self.group.encode()
        try:
            self._tooz.create_group(group).get()
        except coordination.GroupAlreadyExist:
            pass
        try:
            self._tooz.join_group(group).get()
        except coordination.MemberAlreadyExist:
            pass
        if not self._joined:
            LOG.info("Joined coordination group %s as %s", self.group, self.member_id)
        self._joined = True

    def _beat(self) -> None:
        if self._tooz is not None and self._started():
            self._tooz.heartbeat()

    def _refresh(self) -> frozenset[str]:
        from tooz import coordination

        if self._tooz is None or not self._started():
            self._connect()
        self._tooz.heartbeat()
        try:
            found = self._tooz.get_members(self.group.encode()).get()
        except coordination.GroupNotCreated:
            found = set()
        members = frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in found)
        if self.member_id not in members:
            # The backend lost its keys (a restart of Redis) or dropped us after a
            # long pause: join again.
            self._join()
            members = members | {self.member_id}
        return members

    def _leave(self) -> None:
        from tooz import coordination

        if self._tooz is None:
            return
        try:
            if self._started():
                try:
                    self._tooz.leave_group(self.group.encode()).get()
                except (coordination.GroupNotCreated, coordination.MemberNotJoined):
                    pass
        finally:
            try:
                self._tooz.stop()
            except Exception as err:  # noqa: BLE001 - leaving; the lease ends it anyway
                LOG.debug("Stopping the tooz coordinator: %s", err)
            self._tooz = None
            self._joined = False

    def _note_failure(self, err: exception.CoordinationError) -> None:
        # One WARNING per outage, not one per check.
        if self._problem is None:
            LOG.warning("%s; the units owned are kept while the database's fencing "
                        "says they are still ours, no unit is taken over meanwhile", err)
        self._problem = str(err)
        self.healthy = False


def group_members(backend_url: str, group: str = GROUP) -> set[str]:
    """The members of ``group`` now, without joining it (blocking; for the operator's check).

    :raises tooz.ToozError: the backend does not answer (one attempt)
    """
    from tooz import coordination

    driver = coordination.get_coordinator(backend_url, b"alarm-relay-manage-check")
    _fail_fast(driver)
    driver.start(start_heart=False)
    try:
        try:
            found = driver.get_members(group.encode()).get()
        except coordination.GroupNotCreated:
            found = set()
        return {m.decode() if isinstance(m, bytes) else str(m) for m in found}
    finally:
        driver.stop()


def _fail_fast(driver: Any) -> None:
    """Let the Redis driver's client fail at once while the server is down.

    tooz's Redis driver retries a refused connection 15 times, and redis-py retries
    each attempt with back-off: a start or a heartbeat would hang for minutes in an
    outage, and so would the first check after it. One attempt per call is enough
    here, since the ownership stage checks again every ``check_interval``. Other
    drivers are left as they are.
    """
    make_client = getattr(driver, "_make_client", None)
    if make_client is None:
        return
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    def make_failing_fast(*args: Any, **kwargs: Any) -> Any:
        client = make_client(*args, **kwargs)
        client.set_retry(Retry(NoBackoff(), 0))
        return client

    driver._make_client = make_failing_fast


def _describe(err: BaseException) -> str:
    # tooz wraps the driver's error; its text may repeat the URL, which can hold a
    # password: keep only the class and the first line of the cause.
    cause = err.__cause__ or err
    text = str(cause).splitlines()[0] if str(cause) else ""
    return f"{type(cause).__name__}: {text}"[:200]

