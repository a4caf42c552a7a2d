"""The import rules of setup.cfg ([importlinter]) hold, and a forbidden import breaks them.

docs/dev/architecture.md explains each contract. ``lint-imports`` (import-linter) checks
them here, so a violation fails the suite, and ``make lint`` runs it too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "setup.cfg"),
                           "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_import_contracts_hold():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_forbidden_import_breaks_them(tmp_path):
    """A source that imports the store, and the core importing a source, are caught."""
    shutil.copytree(ROOT / "daemon", tmp_path / "daemon",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    with (tmp_path / "daemon" / "sources" / "webhook.py").open("a") as module:
        module.write("\nfrom daemon.store import Store  # noqa: E402,F401\n")
    with (tmp_path / "daemon" / "lifecycle" / "core.py").open("a") as module:
        module.write("\nfrom daemon.sources import webhook  # noqa: E402,F401\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "Sources never import publishing or the store BROKEN" in result.stdout
    assert "The pure core (lifecycle, pipeline, model) imports no I/O stage BROKEN" \
        in result.stdout
    assert "daemon.sources.webhook -> daemon.store" in result.stdout
