"""TLS of the daemon's listener: the server SSL context from ``[webhook]``.

``cert_file`` and ``key_file`` turn TLS on; ``client_ca_file`` adds mutual TLS
(client certificates required and verified against those CAs only). The same
function checks the files at start-up (``daemon.conf.validate``, in the master,
so a bad file stops start-up with one line naming the option) and builds the
context the worker's ``TCPSite`` serves with; no other part knows about TLS.

The master builds the context (:func:`preload`) before it forks the worker,
which inherits it. On SIGHUP the master builds it again from the files
(:func:`reload`): a renewed certificate is served by the new worker, and a
broken file is logged while the previous certificate stays in force, as the
previous mapping does, instead of a worker that dies at every start.
"""

from __future__ import annotations

import dataclasses
import os
import ssl

from oslo_config import cfg
from oslo_log import log

from daemon.exception import ConfigError

__all__ = ["MINIMUM_VERSION", "ListenerTLS", "listener_context", "mode", "preload", "reload",
           "server_context", "webhook_context"]

LOG = log.getLogger(__name__)

#: Oldest protocol the listener accepts (Alertmanager speaks TLS 1.2 and 1.3).
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2

_GROUP = "webhook"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclasses.dataclass(frozen=True, slots=True)
class ListenerTLS:
    """A built context and the files it came from (for the start-up log line)."""

    context: ssl.SSLContext | None
    cert_file: str | None = None
    client_ca_file: str | None = None

    @property
    def mode(self) -> str:
        """``"off"``, ``"tls"`` or ``"mtls"``."""
        if self.context is None:
            return "off"
        return "mtls" if self.context.verify_mode == ssl.CERT_REQUIRED else "tls"


#: What the master built last; the worker it forks inherits it.
_preloaded: ListenerTLS | None = None


def preload(conf: cfg.ConfigOpts) -> None:
    """Build the listener's context in the master, for the workers it forks.

    :raises ConfigError: as :func:`webhook_context`
    """
    global _preloaded
    if not conf.webhook.enabled:
        _preloaded = None
        return
    webhook = conf.webhook
    _preloaded = ListenerTLS(webhook_context(conf), webhook.cert_file or None,
                             webhook.client_ca_file or None)


def reload(conf: cfg.ConfigOpts) -> None:
    """On SIGHUP, in the master: build from the files again, or keep the previous context.

    A renewed certificate takes effect in the next worker; a broken one is
    logged (naming the option) and the previous certificate stays in force.
    """
    try:
        preload(conf)
    except ConfigError as err:
        problem: ConfigError | None = err
    else:
        problem = None
    if problem is not None:
        # Logged outside the except block: oslo.log would repeat the error's text.
        LOG.error("SIGHUP: %s; the listener keeps its previous TLS settings", problem)


def mode(conf: cfg.ConfigOpts) -> str:
    """``"off"``, ``"tls"`` or ``"mtls"``, from the ``[webhook]`` options that are set."""
    webhook = conf.webhook
    if not webhook.cert_file:
        return "off"
    return "mtls" if webhook.client_ca_file else "tls"


def webhook_context(conf: cfg.ConfigOpts) -> ssl.SSLContext | None:
    """The listener's server context from ``[webhook]``, or None when TLS is off.

    :raises ConfigError: naming the option: a key or client CA without
        ``cert_file``, an unreadable file, a file that holds no certificate or
        key, a key that does not belong to the certificate
    """
    webhook = conf.webhook
    if not webhook.cert_file:
        if webhook.key_file:
            raise ConfigError(group=_GROUP, option="key_file",
                              problem="set without cert_file; set both to serve TLS")
        if webhook.client_ca_file:
            raise ConfigError(group=_GROUP, option="client_ca_file",
                              problem="needs cert_file and key_file: client certificates "
                                      "are checked only when the listener serves TLS")
        return None
    return server_context(cert_file=webhook.cert_file, key_file=webhook.key_file or None,
                          client_ca_file=webhook.client_ca_file or None)


def listener_context(conf: cfg.ConfigOpts) -> ssl.SSLContext | None:
    """The context the master preloaded (else built now), logging whether TLS/mTLS is on.

    Called by the worker when it starts the listener.
    """
    webhook = conf.webhook
    tls = _preloaded
    if tls is None:
        tls = ListenerTLS(webhook_context(conf), webhook.cert_file or None,
                          webhook.client_ca_file or None)
    credentials = ("basic auth" if webhook.username else
                   "bearer token" if webhook.bearer_token_file else "no credentials")
    current = tls.mode
    if current == "off":
        if webhook.host not in _LOOPBACK_HOSTS and credentials != "no credentials":
            LOG.warning("Listener TLS off on %s: the webhook's %s crosses the network in "
                        "clear text; set [webhook] cert_file and key_file", webhook.host,
                        credentials)
        else:
            LOG.info("Listener TLS off: plain HTTP (webhook: %s)", credentials)
    elif current == "tls":
        LOG.info("Listener TLS on: HTTPS with the certificate in %s, client certificates not "
                 "requested (webhook: %s)", tls.cert_file, credentials)
    else:
        LOG.info("Listener TLS on with mutual TLS: HTTPS with the certificate in %s, client "
                 "certificates required and verified against %s (webhook: %s)",
                 tls.cert_file, tls.client_ca_file, credentials)
    return tls.context


def server_context(*, cert_file: str, key_file: str | None = None,
                   client_ca_file: str | None = None) -> ssl.SSLContext:
    """A server-side context: TLS 1.2+, the certificate chain, optionally mTLS.

    Built from ``ssl.SSLContext`` itself, not ``ssl.create_default_context``:
    that one trusts the system's CAs for client certificates, and with mutual
    TLS only ``client_ca_file`` may sign them.

    :param cert_file: PEM certificate (chain); may hold the key when ``key_file`` is None
    :param key_file: PEM private key of ``cert_file``
    :param client_ca_file: PEM CA certificates; clients must present a certificate
        they sign
    :raises ConfigError: naming the ``[webhook]`` option whose file is at fault
    """
    for option, path in (("cert_file", cert_file), ("key_file", key_file),
                         ("client_ca_file", client_ca_file)):
        if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            raise ConfigError(group=_GROUP, option=option, problem=f"{path} is not readable")
    if not _holds_certificate(cert_file):
        raise ConfigError(group=_GROUP, option="cert_file",
                          problem=f"{cert_file} holds no PEM certificate")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    asked_for_password = False

    def no_password() -> bytes:
        # OpenSSL would prompt on the terminal for an encrypted key; a daemon cannot answer.
        nonlocal asked_for_password
        asked_for_password = True
        return b""

    try:
        context.load_cert_chain(cert_file, key_file, password=no_password)
    except ssl.SSLError as err:
        option, path = ("key_file", key_file) if key_file else ("cert_file", cert_file)
        if asked_for_password:
            problem = f"{path}: the private key is encrypted; give it unencrypted"
        elif key_file:
            problem = (f"{key_file} is not the private key of the certificate in cert_file "
                       f"({_reason(err)})")
        else:
            problem = (f"{cert_file} holds no private key of its certificate; set key_file "
                       f"({_reason(err)})")
        raise ConfigError(group=_GROUP, option=option, problem=problem) from None
    if client_ca_file:
        try:
            context.load_verify_locations(cafile=client_ca_file)
        except ssl.SSLError as err:
            raise ConfigError(group=_GROUP, option="client_ca_file",
                              problem=f"{client_ca_file} holds no PEM CA certificate "
                                      f"({_reason(err)})") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _holds_certificate(path: str) -> bool:
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cafile=path)
    except ssl.SSLError:
        return False
    return True


def _reason(err: ssl.SSLError) -> str:
    return err.reason or err.strerror or str(err)
