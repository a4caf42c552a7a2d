"""Configuration of alarm-relay: one module per option group.

``register_opts(conf)`` registers every group on a ``ConfigOpts``;
``prepare(argv)`` builds the fully set-up object the entry points use.
"""

from __future__ import annotations

import os
import urllib.parse
from importlib import metadata

from oslo_config import cfg
from oslo_log import log

from daemon import exception, tls
from daemon.conf import (
    aetos_client,
    alertmanager,
    coordination,
    database,
    datasources,
    default,
    lifecycle,
    mapping,
    prometheus_client,
    publisher,
    service_credentials,
    watcher_bridge,
    watcher_client,
    webhook,
)

__all__ = ["GROUP_MODULES", "PROJECT", "prepare", "register_opts", "set_defaults", "validate",
           "validate_watcher_bridge"]

GROUP_MODULES = (
    default,
    alertmanager,
    lifecycle,
    webhook,
    mapping,
    datasources,
    aetos_client,
    service_credentials,
    prometheus_client,
    publisher,
    database,
    coordination,
    watcher_bridge,
    watcher_client,
)

PROJECT = "alarm-relay"

LOG = log.getLogger(__name__)


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register every alarm-relay option group on ``conf``."""
    for module in GROUP_MODULES:
        module.register_opts(conf)


def prepare(argv: list[str], *, cli_opts: list | None = None) -> cfg.ConfigOpts:
    """Return a fresh ConfigOpts with every option registered and ``argv`` parsed.

    :param argv: command-line arguments (without the program name)
    :param cli_opts: extra command-line options (sub-commands of alarm-relay-manage)
    :raises oslo_config.cfg.Error: on unreadable files or bad arguments
    """
    from oslo_service import opts as service_opts

    conf = cfg.ConfigOpts()
    register_opts(conf)
    log.register_options(conf)
    service_opts.register_service_opts(conf)
    set_defaults(conf)
    for opt in cli_opts or ():
        conf.register_cli_opt(opt)
    conf(argv, project=PROJECT, version=_version())
    return conf


def _version() -> str:
    try:
        return metadata.version("alarm-relay")
    except metadata.PackageNotFoundError:
        return "unknown"


def set_defaults(conf: cfg.ConfigOpts | None = None) -> None:
    """Set our defaults for options owned by libraries (oslo.messaging, oslo.log).

    Called by the entry points and by oslo-config-generator (through the
    ``oslo.config.opts.defaults`` entry point), so the sample shows them.
    """
    # Imported here, not at module top: daemon/__init__.py must have selected
    # the oslo.service backend before oslo.messaging is imported.
    from oslo_messaging import transport as _transport
    from oslo_messaging._drivers import amqp as _amqp
    from oslo_messaging.notify import notifier as _notifier

    # Changing the Opt objects themselves (not one ConfigOpts) makes the
    # generated sample and every ConfigOpts that registers them agree.
    cfg.set_defaults(_notifier._notifier_opts, driver=["messagingv2"], topics=["alarms"])
    cfg.set_defaults(_amqp.amqp_opts, amqp_durable_queues=True)
    if conf is not None:
        # Registered early (oslo.messaging would do it when the transport is
        # built) so start-up validation can read transport_url and driver.
        conf.register_opts(_transport._transport_opts)
        conf.register_opts(_notifier._notifier_opts, group="oslo_messaging_notifications")
    log.set_defaults(default_log_levels=log.get_default_log_levels() + [
        "aiohttp.access=WARN", "amqp=WARN", "kombu=WARN", "cotyledon=INFO",
    ])


_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def _check_values(conf: cfg.ConfigOpts) -> None:
    # oslo.config checks types and choices only when an option is read: read
    # them all now, so a bad value stops start-up instead of a later task.
    from daemon.conf import opts

    for group, group_opts in opts.list_opts():
        _check_group_values(conf, group.name if group is not None else None, group_opts)


def _check_group_values(conf: cfg.ConfigOpts, name: str | None, group_opts: list) -> None:
    for opt in group_opts:
        try:
            getattr(conf[name] if name else conf, opt.dest)
        except cfg.NoSuchOptError:
            continue  # keystoneauth plugin options exist only once a plugin loads
        except (cfg.ConfigFileValueError, ValueError) as err:
            problem = str(err).split(": ", 1)[-1] if "is not valid" in str(err) else str(err)
            raise exception.ConfigError(group=name or "DEFAULT", option=opt.name,
                                        problem=f"invalid value ({problem})") from None


def _check_url(group: str, option: str, url: str) -> None:
    parsed = urllib.parse.urlsplit(url)
    # A URL may carry user:password@: the message shows it without.
    shown = url.replace(parsed.netloc, parsed.netloc.rpartition("@")[2], 1)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise exception.ConfigError(
            group=group, option=option,
            problem=f"{shown!r} is not an http(s) URL with a host")
    try:
        parsed.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise exception.ConfigError(group=group, option=option,
                                    problem=f"{shown!r} has an invalid port") from None


def _check_readable(group: str, option: str, path: str | None) -> None:
    if path and not os.access(path, os.R_OK):
        raise exception.ConfigError(group=group, option=option,
                                    problem=f"{path} is not readable")


def validate(conf: cfg.ConfigOpts) -> None:
    """Check the configuration can work before anything starts.

    :raises ConfigError: naming the option and the problem
    :raises MappingError: when the mapping file does not load
    """
    _check_values(conf)
    _check_clusters(conf)
    _check_transport(conf)
    if not conf.oslo_messaging_notifications.driver:
        raise exception.ConfigError(
            group="oslo_messaging_notifications", option="driver",
            problem="empty: oslo.messaging would drop every event (use messagingv2)")
    if (conf.datasources.metrics
            and conf.datasources.resolve_timeout >= conf.mapping.resolve_timeout):
        # The transformer's deadline is a safety net around the resolver's own:
        # if it fires first, the resolver's partial results and reasons are lost.
        raise exception.ConfigError(
            group="datasources", option="resolve_timeout",
            problem=f"{conf.datasources.resolve_timeout}s must be less than [mapping] "
                    f"resolve_timeout ({conf.mapping.resolve_timeout}s)")
    webhook = conf.webhook
    if (webhook.enabled and webhook.host not in _LOOPBACK_HOSTS
            and not (webhook.username and webhook.password) and not webhook.bearer_token_file):
        raise exception.ConfigError(
            group="webhook", option="host",
            problem=f"listening on {webhook.host} needs username/password or "
                    "bearer_token_file; without credentials only loopback is allowed")
    _check_readable("webhook", "bearer_token_file", webhook.bearer_token_file)
    if webhook.enabled:
        tls.webhook_context(conf)  # the certificate, key and client CAs load
    mapping_check(conf)
    _check_state_dir(conf)
    _check_coordination(conf)


def _check_coordination(conf: cfg.ConfigOpts) -> None:
    url = conf.coordination.backend_url
    if not url:
        return
    if not conf.database.connection:
        raise exception.ConfigError(
            group="coordination", option="backend_url",
            problem="several relays need a shared [database] connection (PostgreSQL or "
                    "MySQL/MariaDB); the embedded SQLite file is one relay's")
    if "://" not in url:
        # The URL may hold a password: never echo it.
        raise exception.ConfigError(group="coordination", option="backend_url",
                                    problem="not a tooz URL (driver://host:port)")


def validate_watcher_bridge(conf: cfg.ConfigOpts) -> None:
    """Check the Watcher bridge's configuration (alarm-relay-watcher) before it starts.

    The bridge may share the relay's file; it checks what it uses: the bus,
    ``state_dir``, [watcher_bridge] and [watcher_client]. The rules file is
    loaded (and its errors reported) by the bridge itself.

    :raises ConfigError: naming the option and the problem
    """
    _check_values(conf)
    _check_transport(conf)
    _check_state_dir(conf)
    bridge, client = conf.watcher_bridge, conf.watcher_client
    if client.auth_mode == "noauth" and not client.endpoint_override:
        raise exception.ConfigError(
            group="watcher_client", option="endpoint_override",
            problem="required when auth_mode is noauth (there is no catalog to look in)")
    if bridge.retry_initial_delay > bridge.retry_max_delay:
        raise exception.ConfigError(
            group="watcher_bridge", option="retry_initial_delay",
            problem=f"{bridge.retry_initial_delay}s is more than retry_max_delay "
                    f"({bridge.retry_max_delay}s)")
    if not bridge.state_file or os.sep in bridge.state_file:
        raise exception.ConfigError(
            group="watcher_bridge", option="state_file",
            problem="must be a plain file name (it lives in [DEFAULT] state_dir)")
    _check_readable("watcher_bridge", "rules_path", bridge.rules_path)


def _check_transport(conf: cfg.ConfigOpts) -> None:
    import oslo_messaging

    try:
        transport_url = oslo_messaging.TransportURL.parse(conf, conf.transport_url)
    except (oslo_messaging.InvalidTransportURL, ValueError):
        # The URL holds the broker password: never echo it.
        raise exception.ConfigError(group="DEFAULT", option="transport_url",
                                    problem="not a valid transport URL") from None
    drivers = {ep.name for ep in metadata.entry_points(group="oslo.messaging.drivers")}
    if transport_url.transport not in drivers:
        raise exception.ConfigError(
            group="DEFAULT", option="transport_url",
            problem=f"unknown messaging driver {transport_url.transport!r} "
                    f"(one of: {', '.join(sorted(drivers))})")
    for host in transport_url.hosts:
        if host.port is not None and not 0 < host.port < 65536:
            raise exception.ConfigError(group="DEFAULT", option="transport_url",
                                        problem="invalid port")


def _check_state_dir(conf: cfg.ConfigOpts) -> None:
    state_dir = conf.state_dir
    try:
        os.makedirs(state_dir, exist_ok=True)
    except OSError as err:
        raise exception.ConfigError(group="DEFAULT", option="state_dir",
                                    problem=f"cannot create {state_dir}: {err.strerror}") from None
    if not os.access(state_dir, os.W_OK | os.X_OK):
        raise exception.ConfigError(group="DEFAULT", option="state_dir",
                                    problem=f"{state_dir} is not writable")


def _check_clusters(conf: cfg.ConfigOpts) -> None:
    seen: dict[str, str] = {}
    for cluster in alertmanager.clusters(conf):
        _check_group_values(conf, cluster.group, alertmanager.ALERTMANAGER_OPTS)
        options = cluster.options
        if not options.urls:
            raise exception.ConfigError(group=cluster.group, option="urls",
                                        problem="at least one Alertmanager URL is needed")
        for position, url in enumerate(options.urls, 1):
            _check_url(cluster.group, "urls", url)
            key = url.rstrip("/")
            if key in seen:
                # The URL may hold credentials: name its position, not the URL.
                raise exception.ConfigError(
                    group=cluster.group, option="urls",
                    problem=f"URL number {position} is also a replica of [{seen[key]}]; "
                            "an Alertmanager belongs to one cluster")
            seen[key] = cluster.group
            _warn_api_path(cluster.group, position, url)
        _check_readable(cluster.group, "bearer_token_file", options.bearer_token_file)
        _check_readable(cluster.group, "ca_file", options.ca_file)
    for section in alertmanager.unlisted_cluster_groups(conf):
        LOG.warning("[%s] is ignored: %s is not in [alertmanager] clusters",
                    section, section[len(alertmanager.CLUSTER_GROUP_PREFIX):])


#: Paths of Alertmanager's alert list: a base URL that ends in one was copied
#: from a full API URL (Vitrage's ``alertmanager_url`` held one).
_API_PATHS = ("/api/v2/alerts", "/api/v1/alerts", "/api/v2", "/api/v1")


def _warn_api_path(group: str, position: int, url: str) -> None:
    path = urllib.parse.urlsplit(url).path.rstrip("/")
    for api_path in _API_PATHS:
        if path.endswith(api_path):
            # The URL may hold credentials: name its position, not the URL.
            LOG.warning("[%s] urls: URL number %d ends in %s, but urls takes Alertmanager's "
                        "base URL (the relay appends /api/v2/alerts itself): every poll "
                        "will fail; remove %s", group, position, api_path, api_path)
            return


def mapping_check(conf: cfg.ConfigOpts) -> None:
    """Check ``[mapping] path`` is readable and loads.

    :raises ConfigError: when the file cannot be read
    :raises MappingError: naming file, line and rule when it is invalid
    """
    from daemon.pipeline import mapping as mapping_loader

    if not os.access(conf.mapping.path, os.R_OK):
        raise exception.ConfigError(group="mapping", option="path",
                                    problem=f"{conf.mapping.path} is not readable")
    mapping_loader.load_mapping(conf.mapping.path)
