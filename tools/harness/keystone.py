"""A real Keystone (PyPI ``keystone``) on loopback, and helpers to register what Aetos needs.

Keystone's dependencies conflict with ours, so it lives in its own venv
(``.venv-keystone`` at the repository root, or ``$ALARM_RELAY_KEYSTONE_VENV``), created by
:func:`ensure_keystone_venv` on first use and then reused (about 35 s to install here).

:class:`Keystone` bootstraps on SQLite in its temp dir (``db_sync``, ``fernet_setup``,
``credential_setup``, ``bootstrap`` with admin/RegionOne and a public URL of
``http://127.0.0.1:PORT/v3``; about 10 s) and serves
``keystone.server.wsgi.initialize_public_application()`` with a threaded wsgiref server in a
subprocess, configured through ``OS_KEYSTONE_CONFIG_FILES``.

The admin helpers talk plain Keystone v3 REST with an admin token: projects, users, role
assignments, services and endpoints.  :meth:`Keystone.authtoken_env` gives the environment
with which Aetos (keystone mode) validates tokens against this Keystone.
"""

from __future__ import annotations

import fcntl
import grp
import os
import pwd
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import requests

from tools.harness.ports import LOOPBACK
from tools.harness.services import Service, ServiceError

__all__ = [
    "ADMIN_PASSWORD",
    "KEYSTONE_VENV",
    "Keystone",
    "REGION",
    "ensure_keystone_venv",
]

REPO = Path(__file__).resolve().parents[2]
KEYSTONE_VENV = Path(os.environ.get("ALARM_RELAY_KEYSTONE_VENV", REPO / ".venv-keystone"))
KEYSTONE_REQUIREMENT = os.environ.get("ALARM_RELAY_KEYSTONE_REQUIREMENT", "keystone>=26")
ADMIN_PASSWORD = "relay-admin-secret"
REGION = "RegionOne"

_SERVE = """
import signal, sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
host, port = sys.argv[1], int(sys.argv[2])
sys.argv = ["keystone-wsgi-public"]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
from keystone.server import wsgi
app = wsgi.initialize_public_application()
class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass
with make_server(host, port, app, server_class=Server, handler_class=Quiet) as server:
    server.serve_forever()
"""

#: Seconds the last ensure_keystone_venv() call spent installing (0 when cached).
last_install_seconds: float = 0.0


def _venv_ready(venv: Path) -> bool:
    python = venv / "bin" / "python"
    if not (venv / "bin" / "keystone-manage").exists() or not python.exists():
        return False
    probe = subprocess.run([str(python), "-c", "import keystone.server.wsgi"],
                           capture_output=True, timeout=120)
    return probe.returncode == 0


def ensure_keystone_venv(venv: Path = KEYSTONE_VENV, timeout: float = 900.0) -> Path:
    """Create Keystone's own venv unless it is there already; return its path.

    Safe to call from parallel processes (a lock file serialises the install).

    :raises ServiceError: the install failed (pip's output tail included)
    """
    global last_install_seconds
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / f".{venv.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _venv_ready(venv):
            last_install_seconds = 0.0
            return venv
        began = time.monotonic()
        log_path = venv.parent / f".{venv.name}-install.log"
        with open(log_path, "wb") as log:
            steps = [
                [sys.executable, "-m", "venv", "--clear", str(venv)],
                [str(venv / "bin" / "pip"), "install", "--quiet",
                 "--disable-pip-version-check", KEYSTONE_REQUIREMENT],
            ]
            for step in steps:
                remaining = max(1.0, timeout - (time.monotonic() - began))
                result = subprocess.run(step, stdout=log, stderr=subprocess.STDOUT,
                                        timeout=remaining)
                if result.returncode != 0:
                    tail = log_path.read_text(errors="replace").splitlines()[-30:]
                    raise ServiceError(f"installing Keystone failed ({' '.join(step)}):\n"
                                       + "\n".join(tail))
        last_install_seconds = time.monotonic() - began
        if not _venv_ready(venv):
            raise ServiceError(f"Keystone venv {venv} is unusable after install")
        return venv


class Keystone(Service):
    """Keystone on SQLite, bootstrapped with an ``admin`` user in project ``admin``.

    :param venv: Keystone's venv (installed on first use)
    """

    name = "keystone"
    start_timeout = 60.0

    def __init__(self, *, venv: Path = KEYSTONE_VENV, port: int | None = None,
                 workdir: str | Path | None = None) -> None:
        super().__init__(port=port, workdir=workdir)
        self.venv = venv
        self.config_path = self.workdir / "keystone.conf"
        #: seconds db_sync + fernet/credential setup + bootstrap took
        self.bootstrapped_in: float | None = None
        self._token: str | None = None
        self._token_expires = 0.0

    # -- Service hooks ----------------------------------------------------------

    @property
    def auth_url(self) -> str:
        """The Keystone v3 URL clients authenticate against."""
        return f"{self.url}/v3"

    def prepare(self) -> None:
        ensure_keystone_venv(self.venv)
        if (self.workdir / "bootstrapped").exists():
            return
        began = time.monotonic()
        (self.workdir / "fernet-keys").mkdir(exist_ok=True, mode=0o700)
        (self.workdir / "credential-keys").mkdir(exist_ok=True, mode=0o700)
        self.config_path.write_text(
            "[DEFAULT]\n"
            f"log_file = {self.workdir / 'keystone-app.log'}\n"
            "[database]\n"
            f"connection = sqlite:///{self.workdir / 'keystone.db'}\n"
            "[fernet_tokens]\n"
            f"key_repository = {self.workdir / 'fernet-keys'}\n"
            "[credential]\n"
            f"key_repository = {self.workdir / 'credential-keys'}\n"
            "[token]\n"
            "expiration = 3600\n"
            "[cache]\n"
            "enabled = false\n")
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        for args in (
            ["db_sync"],
            ["fernet_setup", "--keystone-user", user, "--keystone-group", group],
            ["credential_setup", "--keystone-user", user, "--keystone-group", group],
            ["bootstrap", "--bootstrap-password", ADMIN_PASSWORD,
             "--bootstrap-admin-url", self.auth_url,
             "--bootstrap-internal-url", self.auth_url,
             "--bootstrap-public-url", self.auth_url,
             "--bootstrap-region-id", REGION],
        ):
            self._manage(*args)
        (self.workdir / "bootstrapped").touch()
        self.bootstrapped_in = time.monotonic() - began

    def _manage(self, *args: str) -> None:
        command = [str(self.venv / "bin" / "keystone-manage"),
                   "--config-file", str(self.config_path), *args]
        with open(self.log_path, "ab") as log:
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self.workdir, timeout=180)
        if result.returncode != 0:
            raise ServiceError(f"keystone-manage {args[0]} failed\n{self.log_tail()}")

    def command(self) -> list[str]:
        # Keystone parses sys.argv itself, so it gets a small server of its own (threaded
        # wsgiref, as wsgi_serve.py's fallback) rather than wsgi_serve.py's arguments.
        return [str(self.venv / "bin" / "python"), "-c", _SERVE,
                LOOPBACK, str(self.port)]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "OS_KEYSTONE_CONFIG_FILES": str(self.config_path)}

    def is_ready(self) -> bool:
        return requests.get(self.auth_url, timeout=2).status_code == 200

    # -- admin REST helpers -------------------------------------------------------

    def token(self, *, username: str = "admin", password: str = ADMIN_PASSWORD,
              project: str = "admin") -> str:
        """A project-scoped token (users and projects in the Default domain)."""
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": username, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        resp = requests.post(f"{self.auth_url}/auth/tokens", json=body, timeout=10)
        if resp.status_code != 201:
            raise ServiceError(f"keystone token for {username}: {resp.status_code} {resp.text}")
        return resp.headers["X-Subject-Token"]

    def _admin(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if self._token is None or time.monotonic() > self._token_expires:
            self._token = self.token()
            self._token_expires = time.monotonic() + 1800
        resp = requests.request(method, f"{self.auth_url}{path}",
                                headers={"X-Auth-Token": self._token}, timeout=10, **kwargs)
        if resp.status_code >= 400:
            raise ServiceError(f"keystone {method} {path}: {resp.status_code} {resp.text}")
        return resp.json() if resp.content else {}

    def _find(self, collection: str, name: str) -> str | None:
        items = self._admin("GET", f"/{collection}", params={"name": name})[collection]
        return items[0]["id"] if items else None

    def project(self, name: str) -> str:
        """Id of project ``name`` (created when missing)."""
        found = self._find("projects", name)
        if found:
            return found
        return self._admin("POST", "/projects", json={"project": {
            "name": name, "domain_id": "default"}})["project"]["id"]

    def role(self, name: str) -> str:
        """Id of role ``name`` (created when missing)."""
        found = self._find("roles", name)
        if found:
            return found
        return self._admin("POST", "/roles", json={"role": {"name": name}})["role"]["id"]

    def user(self, name: str, password: str, *, project: str,
             roles: Iterable[str]) -> str:
        """Create user ``name`` with ``roles`` on ``project`` (created when missing)."""
        project_id = self.project(project)
        user_id = self._find("users", name) or self._admin("POST", "/users", json={"user": {
            "name": name, "password": password, "domain_id": "default",
            "default_project_id": project_id}})["user"]["id"]
        for role in roles:
            self._admin("PUT", f"/projects/{project_id}/users/{user_id}/roles/{self.role(role)}")
        return user_id

    def register_service(self, service_type: str, url: str, *, name: str | None = None,
                         interfaces: Iterable[str] = ("public",),
                         region: str = REGION) -> dict[str, str]:
        """Register a service and its endpoints; return interface -> endpoint id."""
        service_id = self._admin("POST", "/services", json={"service": {
            "type": service_type, "name": name or service_type}})["service"]["id"]
        return {interface: self._admin("POST", "/endpoints", json={"endpoint": {
            "service_id": service_id, "interface": interface, "url": url,
            "region_id": region}})["endpoint"]["id"] for interface in interfaces}

    def delete_endpoint(self, endpoint_id: str) -> None:
        self._admin("DELETE", f"/endpoints/{endpoint_id}")

    def authtoken_env(self, *, username: str = "admin", password: str = ADMIN_PASSWORD,
                      project: str = "admin") -> dict[str, str]:
        """Environment for keystonemiddleware in Aetos (keystone mode) to use this Keystone."""
        prefix = "OS_KEYSTONE_AUTHTOKEN__"
        return {
            f"{prefix}AUTH_URL": self.auth_url,
            f"{prefix}WWW_AUTHENTICATE_URI": self.auth_url,
            f"{prefix}AUTH_TYPE": "password",
            f"{prefix}USERNAME": username,
            f"{prefix}PASSWORD": password,
            f"{prefix}PROJECT_NAME": project,
            f"{prefix}USER_DOMAIN_ID": "default",
            f"{prefix}PROJECT_DOMAIN_ID": "default",
        }

    def service_credentials(self, username: str, password: str, *,
                            project: str) -> dict[str, str]:
        """The relay's ``[service_credentials]`` options for this user."""
        return {"auth_type": "password", "auth_url": self.auth_url,
                "username": username, "password": password, "project_name": project,
                "user_domain_id": "default", "project_domain_id": "default"}
