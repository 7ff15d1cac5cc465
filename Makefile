# Two commands on a fresh machine: `make demo` and `make test`. Everything else
# (uv, the virtualenv, dependencies) is installed on first use.

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := .tools/bin/uv
endif
RUN := $(UV) run --frozen
PYTEST_ARGS ?= -n 2

.PHONY: install demo demo-adk demo-mixed demo-core test test-cluster test-deps test-fast bench lint typecheck fmt clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

.venv/.synced: $(UV) uv.lock pyproject.toml core/pyproject.toml integrations/*/pyproject.toml libs/*/pyproject.toml
	$(UV) sync --frozen
	@touch $@

install: .venv/.synced  ## create .venv with every workspace member and dev tool

demo: install  ## a LangGraph app served by a worker process on the embedded Redis: tools, tokens, an approval
	$(RUN) python -m examples.langgraph_app.demo

demo-adk: install  ## an ADK agent served by a worker process: tool calls, tokens, a tool confirmation
	$(RUN) python -m examples.adk_agent.demo

demo-mixed: install  ## a LangGraph supervisor calling an ADK specialist that asks the user
	$(RUN) python -m examples.mixed_tree.demo

demo-core: install  ## the plain-handler demo (byway demo)
	$(RUN) byway demo

test: install  ## the suite against real Redis (configured, local, else embedded), then the core suite on a local 3-master Redis Cluster
	$(RUN) pytest $(PYTEST_ARGS) -m "not slow and not deps"
	BYWAY_TEST_CLUSTER=1 $(RUN) pytest $(PYTEST_ARGS) -m "not slow" tests/core tests/langgraph tests/adk

test-cluster: install  ## the core suite on a local 3-master Redis Cluster only
	BYWAY_TEST_CLUSTER=1 $(RUN) pytest $(PYTEST_ARGS) -m "not slow" tests/core tests/langgraph tests/adk

test-slow: install  ## the slow tests too (chaos: workers SIGKILLed while 500 tasks run)
	$(RUN) pytest $(PYTEST_ARGS) -m "not deps"

test-deps: install  ## plain pip resolves byway[...] for every combination of extras (needs PyPI)
	$(RUN) pytest -n 4 -m deps tests/deps

bench: install  ## throughput and latency beside the raw redis-py floor
	$(RUN) byway bench --workers 1

lint: install  ## ruff and mypy
	$(RUN) ruff check core integrations libs tests examples
	$(RUN) ruff format --check core integrations libs tests examples
	$(RUN) mypy

typecheck: install
	$(RUN) mypy

fmt: install
	$(RUN) ruff format core integrations libs tests examples
	$(RUN) ruff check --fix core integrations libs tests examples

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache
