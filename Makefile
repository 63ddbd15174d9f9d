# Two entry points a fresh machine needs: `make demo` and `make test`.
# Everything installs from uv.lock, the same lock the Heroku-like buildpacks install from.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv itself comes from PyPI into a small virtualenv of its own, bounded like every other tool.
UV_VENV := .venv-uv
UV := $(UV_VENV)/bin/uv
UV_SPEC := uv>=0.9,<0.14

.PHONY: install demo test lint lock-check bench clean

$(UV):
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install --quiet '$(UV_SPEC)'

$(STAMP): pyproject.toml uv.lock | $(UV)
	UV_PYTHON=$(PYTHON) $(UV) sync --locked --quiet
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/dcs-tasks-bot demo

# Fails when uv.lock no longer matches pyproject.toml.
lock-check: $(UV)
	$(UV) lock --check --quiet

lint: $(STAMP) lock-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The suite in two workers per core (tests share nothing but loopback ports chosen by the OS, and
# spend much of their time waiting on subprocesses and sockets: 62 s instead of 85 s with one per
# core on 2 cores), then the slow fault drills one at a time: they time real processes against
# each other.
TEST_WORKERS ?= $(shell echo $$(( 2 * $$(nproc 2>/dev/null || echo 1) )))
test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not slow"
	$(BIN)/pytest -m slow

# The official Huawei Cloud SDK that `bench` compares against lives in its own virtualenv.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP):
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet 'huaweicloudsdkdcs>=3.1,<4'
	touch $(BENCH_STAMP)

# `make bench BENCH_ARGS=--quick` for a fast smoke run; `BENCH_ARGS='--only cycle,state'`.
bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(UV_VENV) .venv-bench .pytest_cache .mypy_cache .ruff_cache
