"""``alarm-relay-manage check``: the seed guide's verification and troubleshooting in one command.

Each check prints one line, ``OK <name>: ...``, ``SKIP <name>: <why>`` or
``FAIL <name>: <problem> -- <fix>``; the exit code is 0 only when nothing
failed.  The checks, in order:

- ``keystone``: [service_credentials] give a token (Aetos in keystone mode)
- ``catalog``: ``metric-storage`` is in the catalog for [aetos_client]
  interface and region (or ``endpoint_override`` is set)
- ``aetos-query``: Aetos answers an instant query
- ``aetos-role``: the token's answers are not filtered to one project
  (admin or service role; ``count(up)`` is not empty)
- ``aetos-labels``: ``fqdn_label`` and ``instance_uuid_label`` exist among
  Aetos's label names
- ``prometheus-query``, ``prometheus-labels``: the same for [prometheus_client]
- ``alertmanager <url>``: each url of each configured cluster answers GET /api/v2/status
  and its cluster is ready (or clustering is off)
- ``rabbitmq``: the broker of transport_url accepts a connection
- ``mapping``: [mapping] path loads
- ``coordination``: with [coordination] backend_url, the tooz backend answers; the
  members of the group (this command only looks, it does not join)
- ``ownership``: every unit (cluster or partition), its owner and epoch as the shared
  database records them; FAIL when a unit has no live owner (a takeover not done yet)

Aetos checks are skipped when ``[datasources] metrics`` does not list aetos,
Prometheus checks when it does not list prometheus; a check whose
prerequisite failed is skipped with that reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
from oslo_config import cfg
from oslo_log import log

from daemon.conf import alertmanager as alertmanager_conf
from daemon.exception import AlarmRelayError, DatasourceError

__all__ = ["Check", "add_parser", "run", "run_checks"]

LOG = log.getLogger(__name__)

#: Seconds allowed for the broker connection check.
BROKER_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome.

    :ivar status: OK, FAIL or SKIP
    :ivar name: what was checked
    :ivar message: what was found; for FAIL the problem and, after ``--``, the fix
    """

    status: str
    name: str
    message: str

    @property
    def line(self) -> str:
        return f"{self.status} {self.name}: {self.message}"


def add_parser(subparsers: Any) -> None:
    """Add the ``check`` sub-command.

    :param subparsers: the argparse sub-parsers of ``alarm-relay-manage``
    """
    parser = subparsers.add_parser(
        "check", help="Check Keystone, Aetos/Prometheus, Alertmanager, RabbitMQ and the "
                      "mapping; exit 0 only when all pass.",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    parser.set_defaults(func=run)


def run(conf: cfg.ConfigOpts, *, out: Callable[[str], None] = print) -> int:
    """Run every check, print one line each, return the exit code.

    :param conf: the relay's parsed configuration
    :param out: where lines go (default: standard output)
    :returns: 0 when no check failed, 1 otherwise
    """
    checks = asyncio.run(run_checks(conf, out=out))
    return 1 if any(c.status == "FAIL" for c in checks) else 0


async def run_checks(conf: cfg.ConfigOpts, *,
                     out: Callable[[str], None] | None = None) -> list[Check]:
    """Run the checks in order; ``out`` gets each line as soon as it is known."""
    results: list[Check] = []

    def add(status: str, name: str, message: str) -> Check:
        check = Check(status, name, message)
        results.append(check)
        if out is not None:
            out(check.line)
        return check

    metrics = list(conf.datasources.metrics)
    await _check_aetos(conf, metrics, add)
    await _check_prometheus(conf, metrics, add)
    await _check_alertmanagers(conf, add)
    await _check_rabbitmq(conf, add)
    await asyncio.to_thread(_check_mapping, conf, add)
    await asyncio.to_thread(_check_coordination, conf, add)
    return results


# -- Aetos ----------------------------------------------------------------------

async def _check_aetos(conf: cfg.ConfigOpts, metrics: list[str], add) -> None:
    from daemon.datasources import keystone
    from daemon.datasources.aetos import AetosDatasource

    names = ("keystone", "catalog", "aetos-query", "aetos-role", "aetos-labels")
    if "aetos" not in metrics:
        for name in names:
            add("SKIP", name, "[datasources] metrics does not list aetos")
        return
    try:
        backend = AetosDatasource.from_conf(conf)
    except (DatasourceError, OSError, ssl.SSLError) as err:
        add("FAIL", "aetos", f"{err} -- fix [aetos_client]")
        for name in names:
            add("SKIP", name, "[aetos_client] is unusable")
        return
    async with backend:
        if backend.keystone is None:
            add("SKIP", "keystone", "[aetos_client] auth_mode = noauth")
            add("SKIP", "catalog", f"[aetos_client] auth_mode = noauth, using "
                                   f"{backend.endpoint_override}")
        else:
            try:
                await backend.keystone.get_token()
                project = await backend.keystone.get_project_id()
                roles = await backend.keystone.get_roles()
            except DatasourceError as err:
                add("FAIL", "keystone", _with_fix(err, "check [service_credentials]"))
                for name in names[1:]:
                    add("SKIP", name, "keystone failed")
                return
            add("OK", "keystone",
                f"token from {backend.keystone.auth_url} for project {project} "
                f"with roles {', '.join(sorted(roles)) or 'none'}")
            if backend.endpoint_override:
                add("OK", "catalog", f"endpoint_override {backend.endpoint_override} "
                                     "(the catalog is not used)")
            else:
                try:
                    url = await backend.endpoint()
                except DatasourceError as err:
                    add("FAIL", "catalog", _with_fix(err, "register the endpoint"))
                    for name in names[2:]:
                        add("SKIP", name, "no Aetos endpoint")
                    return
                add("OK", "catalog",
                    f"{keystone.SERVICE_TYPE} at {url} (interface {backend.interface}, "
                    f"region {backend.region_name or 'any'})")
        try:
            # A plain selector: Aetos rewrites the queries of a filtered token and its
            # rewriting refuses function calls such as vector(1).
            await backend.query("up")
        except DatasourceError as err:
            add("FAIL", "aetos-query", _with_fix(err, "check that Aetos is up"))
            for name in names[3:]:
                add("SKIP", name, "Aetos does not answer")
            return
        add("OK", "aetos-query", f"{backend.where} answers instant queries")
        await _check_role(backend, add)
        await _check_labels(backend, "aetos-labels", add)


async def _check_role(backend, add) -> None:
    from daemon.datasources import keystone

    filtered = await backend.filtered()
    if filtered:
        add("FAIL", "aetos-role", filtered)
        return
    try:
        result = await backend.query("count(up)")
    except DatasourceError as err:
        add("FAIL", "aetos-role", _with_fix(err, keystone.FORBIDDEN_HINT))
        return
    count = result.vector[0].value if result.vector else 0.0
    if not count:
        add("FAIL", "aetos-role", "count(up) is 0: Aetos returned no target at all, as it "
                                  "does for a token whose answers it filters to one project "
                                  f"-- {keystone.FORBIDDEN_HINT}")
        return
    add("OK", "aetos-role", f"unfiltered answers (count(up) = {count:g})")


async def _check_labels(backend, name: str, add) -> None:
    try:
        labels = set(await backend.labels())
    except DatasourceError as err:
        add("FAIL", name, _with_fix(err, "check that the server answers /api/v1/labels"))
        return
    wanted = {"fqdn_label": backend.fqdn_label,
              "instance_uuid_label": backend.instance_uuid_label}
    missing = [f"{option} '{label}'" for option, label in wanted.items()
               if label not in labels]
    if missing:
        group = "aetos_client" if backend.NAME == "aetos" else "prometheus_client"
        add("FAIL", name,
            f"no series carries {' or '.join(missing)} -- set [{group}] "
            "fqdn_label/instance_uuid_label to the labels your exporters use, or add "
            "them to the scrape targets (metrics not found or empty otherwise)")
        return
    add("OK", name, f"labels {backend.fqdn_label} and {backend.instance_uuid_label} "
                    "are present")


# -- Prometheus -----------------------------------------------------------------

async def _check_prometheus(conf: cfg.ConfigOpts, metrics: list[str], add) -> None:
    from daemon.datasources.prometheus import PrometheusDatasource

    if "prometheus" not in metrics:
        for name in ("prometheus-query", "prometheus-labels"):
            add("SKIP", name, "[datasources] metrics does not list prometheus")
        return
    try:
        backend = PrometheusDatasource.from_conf(conf)
    except (OSError, ssl.SSLError) as err:
        add("FAIL", "prometheus-query", f"{err} -- fix [prometheus_client] TLS files")
        add("SKIP", "prometheus-labels", "[prometheus_client] is unusable")
        return
    async with backend:
        try:
            await backend.query("vector(1)")
        except DatasourceError as err:
            add("FAIL", "prometheus-query",
                _with_fix(err, "check [prometheus_client] host/port/path_prefix"))
            add("SKIP", "prometheus-labels", "Prometheus does not answer")
            return
        add("OK", "prometheus-query", f"{backend.url} answers instant queries")
        await _check_labels(backend, "prometheus-labels", add)


# -- Alertmanager -----------------------------------------------------------------

def _alertmanager_client_options(group: Any) -> tuple[ssl.SSLContext | bool, dict[str, str]]:
    """TLS context and auth headers of [alertmanager] (reads files: call in a thread)."""
    context: ssl.SSLContext | bool = True
    headers: dict[str, str] = {}
    if any(u.startswith("https") for u in group.urls):
        context = ssl.create_default_context(cafile=group.ca_file)
        if group.cert_file:
            context.load_cert_chain(group.cert_file, group.key_file)
        if group.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    if group.username:
        headers["Authorization"] = aiohttp.encode_basic_auth(
            group.username, group.password or "")
    elif group.bearer_token_file:
        with open(group.bearer_token_file, encoding="utf-8") as token_file:
            headers["Authorization"] = f"Bearer {token_file.read().strip()}"
    return context, headers


async def _check_alertmanagers(conf: cfg.ConfigOpts, add) -> None:
    for cluster in alertmanager_conf.clusters(conf):
        group = cluster.options
        try:
            context, headers = await asyncio.to_thread(_alertmanager_client_options, group)
        except (OSError, ssl.SSLError) as err:
            add("FAIL", "alertmanager", f"{err} -- fix the [{cluster.group}] TLS or token files")
            continue
        timeout = aiohttp.ClientTimeout(total=group.timeout)
        async with aiohttp.ClientSession(
                timeout=timeout, headers=headers,
                connector=aiohttp.TCPConnector(ssl=context)) as session:
            for url in group.urls or ():
                add(*await _check_alertmanager(session, url.rstrip("/"), group.timeout,
                                               cluster.group))


async def _check_alertmanager(session: aiohttp.ClientSession, url: str,
                              seconds: float, group: str = "alertmanager",
                              ) -> tuple[str, str, str]:
    name = f"alertmanager {url}"
    status_url = f"{url}/api/v2/status"
    try:
        async with session.get(status_url) as resp:
            if resp.status != 200:
                return ("FAIL", name, f"GET {status_url} answered HTTP {resp.status} -- "
                        "check the URL (path prefix included) and the credentials")
            body = await resp.json(content_type=None)
    except TimeoutError:
        return ("FAIL", name, f"no answer within {seconds:g}s -- check that Alertmanager "
                              f"is up, or raise [{group}] timeout")
    except (aiohttp.ClientError, ValueError) as err:
        return ("FAIL", name, f"cannot reach {status_url}: {err} -- check [{group}] "
                              "urls and that Alertmanager is up")
    cluster = (body or {}).get("cluster") or {}
    state = cluster.get("status", "unknown")
    version = ((body or {}).get("versionInfo") or {}).get("version", "?")
    peers = len(cluster.get("peers") or [])
    if state in ("ready", "disabled"):
        detail = "clustering off" if state == "disabled" else f"cluster ready, {peers} peers"
        return ("OK", name, f"Alertmanager {version}, {detail}")
    return ("FAIL", name, f"cluster status is '{state}' -- wait for the cluster to settle "
                          "and check that the replicas reach each other (--cluster.peer)")


# -- RabbitMQ -----------------------------------------------------------------------

async def _check_rabbitmq(conf: cfg.ConfigOpts, add) -> None:
    try:
        message = await asyncio.wait_for(asyncio.to_thread(_connect_broker, conf),
                                         BROKER_TIMEOUT + 5)
    except TimeoutError:
        add("FAIL", "rabbitmq", f"no connection within {BROKER_TIMEOUT + 5:g}s -- check "
                                "transport_url and that RabbitMQ is up")
        return
    except Exception as err:  # every broker and URL error ends up here
        add("FAIL", "rabbitmq", f"{_one_line(err)} -- check [DEFAULT] transport_url "
                                "(host, port, user, password, virtual host) and that "
                                "RabbitMQ is up")
        return
    add("OK", "rabbitmq", message)


def _connect_broker(conf: cfg.ConfigOpts) -> str:
    """Open and close one connection to each broker of the notification transport."""
    import kombu
    import oslo_messaging

    oslo_messaging.get_notification_transport(conf).cleanup()
    url_text = (conf.oslo_messaging_notifications.transport_url or conf.transport_url)
    url = oslo_messaging.TransportURL.parse(conf, url_text)
    if not url.hosts:
        raise ValueError("transport_url names no broker")
    reached = []
    for host in url.hosts:
        vhost = url.virtual_host or "/"
        connection = kombu.Connection(
            hostname=host.hostname, port=host.port or 5672, userid=host.username,
            password=host.password, virtual_host=vhost,
            connect_timeout=BROKER_TIMEOUT, ssl=conf.oslo_messaging_rabbit.ssl)
        try:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT)
        finally:
            connection.release()
        reached.append(f"{host.hostname}:{host.port or 5672}")
    return f"broker {', '.join(reached)} accepts our credentials"


# -- mapping ----------------------------------------------------------------------

def _check_mapping(conf: cfg.ConfigOpts, add) -> None:
    from daemon.pipeline.mapping import load_mapping

    path = conf.mapping.path
    try:
        mapping = load_mapping(path)
    except AlarmRelayError as err:
        add("FAIL", "mapping", f"{err} -- fix the file (alarm-relay-manage mapping validate)")
        return
    add("OK", "mapping", f"{path}: {len(mapping)} rules")


# -- coordination -----------------------------------------------------------------

def _check_coordination(conf: cfg.ConfigOpts, add) -> None:
    from daemon.coordination import GROUP, cluster_units, group_members

    if not conf.coordination.backend_url:
        add("SKIP", "coordination", "[coordination] backend_url is empty (a single relay)")
        add("SKIP", "ownership", "a single relay owns every cluster")
        return
    try:
        members = group_members(conf.coordination.backend_url, GROUP)
    except Exception as err:  # noqa: BLE001 - any driver error is the finding
        # The URL may hold a password: name the error only.
        add("FAIL", "coordination", f"the tooz backend does not answer ({type(err).__name__})"
                                    " -- check [coordination] backend_url and the backend")
        members = None
    else:
        add("OK", "coordination",
            f"{len(members)} members in group {GROUP}: {', '.join(sorted(members)) or 'none'}")
    units = [unit for cluster in alertmanager_conf.clusters(conf)
             for unit in cluster_units(cluster.name, conf.coordination.partitions)]
    try:
        owners = _owners(conf)
    except Exception as err:  # noqa: BLE001 - any database error is the finding
        add("FAIL", "ownership", f"the database does not answer: {_one_line(err)} "
                                 "-- check [database] connection")
        return
    lines, orphans = [], []
    for unit in units:
        owner, epoch = owners.get(unit, (None, 0))
        alive = members is None or owner in members
        lines.append(f"{unit} -> {owner or 'no one'} (epoch {epoch})"
                     + ("" if alive else " not a member"))
        if owner is None or not alive:
            orphans.append(unit)
    if orphans:
        add("FAIL", "ownership", "; ".join(lines) + " -- the units without a live owner "
            "are taken over within [coordination] lease + check_interval; if not, check "
            "that a relay runs with the same backend_url and database")
    else:
        add("OK", "ownership", "; ".join(lines))


def _owners(conf: cfg.ConfigOpts) -> dict[str, tuple[str, int]]:
    from daemon.store import store_from_conf

    store = store_from_conf(conf)
    store.open()
    try:
        return store.owners()
    finally:
        store.close()


# -- helpers ------------------------------------------------------------------------

def _with_fix(err: BaseException, fix: str) -> str:
    text = str(err)
    return text if " -- " in text else f"{text} -- {fix}"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__
