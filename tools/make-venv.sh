#!/usr/bin/env bash
# Create (or update) the project's virtualenv with Python >= 3.11 and install the project in
# editable mode plus the test requirements. Called by `make venv`, which re-runs it only when
# setup.cfg, pyproject.toml or a requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}

new_enough() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

pick_python() {
    local candidate
    for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && new_enough "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "make-venv: need root (or sudo) for: $*" >&2; return 1; fi
}

if [ -x "$VENV/bin/python" ] && ! new_enough "$VENV/bin/python"; then
    echo "make-venv: $VENV has Python < 3.11, recreating it"
    rm -rf "$VENV"
fi

if [ ! -x "$VENV/bin/python" ]; then
    py=$(pick_python) || { echo "make-venv: need Python >= 3.11 (apt-get install python3)" >&2; exit 1; }
    echo "make-venv: creating $VENV with $py"
    if ! "$py" -m venv "$VENV"; then
        # Debian ships ensurepip separately: python3 -m venv fails until python3-venv is in.
        rm -rf "$VENV"
        as_root apt-get update -q
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q python3-venv
        "$py" -m venv "$VENV"
    fi
fi

"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e . -r test-requirements.txt
