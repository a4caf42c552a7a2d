# alarm-relay developer entry points. `make test` is what CI runs (.ci/run).
#   make venv       .venv with Python >= 3.11, the project (editable) and test requirements
#   make services   Debian's Alertmanager, Prometheus, node exporter, RabbitMQ, Redis, PostgreSQL,
#                   MariaDB (the last four running on 127.0.0.1; tools/ensure-services.sh)
#   make test       unit + functional tests against the real services
#   make lint       ruff and the import rules (lint-imports)
#   make genconfig  regenerate etc/alarm-relay/alarm-relay.conf.sample and docs/configuration.md
#   make demo       the daemon against real local services (DEMO_ARGS=--with-watcher: and Watcher)
#   make bench      the benchmark suite

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Re-install only when the dependency declarations change.
STAMP := $(VENV)/.alarm-relay-installed
DEPS := setup.cfg setup.py pyproject.toml requirements.txt test-requirements.txt
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: all venv services test unit functional lint genconfig demo bench clean

all: test

venv: $(STAMP)

$(STAMP): $(DEPS) tools/make-venv.sh
	tools/make-venv.sh $(VENV)
	touch $@

services:
	tools/ensure-services.sh

# One pytest run over both trees: one summary, non-zero exit on any failure.
test: venv services
	$(PY) -m pytest tests/unit tests/functional $(PYTEST_ARGS)

unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

functional: venv services
	$(PY) -m pytest tests/functional $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check daemon tests benchmarks tools
	$(VENV)/bin/lint-imports

genconfig: venv
	$(VENV)/bin/oslo-config-generator --config-file etc/alarm-relay/alarm-relay-config-generator.conf
	$(PY) -m tools.gen_config_doc

demo: venv services
	$(PY) tools/demo.py $(DEMO_ARGS)

bench: venv services
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
