# The two commands of the quick start are `make demo` and `make test`.
# Both create the environment from uv.lock first (installing uv if it is missing).

SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := .tools/bin/uv
endif
RUN := $(UV) run --frozen

export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

.PHONY: demo test lint format bench env clean

env: .venv/.synced

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

# Byte-compiled once at install: every newswatch process (and many tests start them)
# would otherwise compile Prefect's thousands of modules from source when
# PYTHONDONTWRITEBYTECODE is set, as on CI machines.
.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

demo: env
	$(RUN) newswatch demo

test: env lint
	$(RUN) pytest

lint: env
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

format: env
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

# The benchmarks against newsboat and rss2email (see bench/README.md); not part of `test`.
# newsboat comes from Debian: apt-get install -y newsboat
bench: env
	$(RUN) --group bench python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf .venv .tools demo-output .pytest_cache .mypy_cache .ruff_cache
