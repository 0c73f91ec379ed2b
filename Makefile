# Two commands: `make demo` and `make test`. Each sets up .venv by itself on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RESULTS ?= results
RAY_HOME := $(CURDIR)/.cache/ray-home

# Keep local Ray clusters on 127.0.0.1, send no usage stats, never probe cloud metadata.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export RAY_USAGE_STATS_ENABLED := 0
export RAY_USAGE_STATS_REPORT_URL := http://127.0.0.1:9/
RUN_ENV := HOME=$(RAY_HOME) MPLCONFIGDIR=$(RAY_HOME)/mpl

.PHONY: install demo test bench lint typecheck clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps 'torchattacks==3.5.1'
	@touch $(STAMP)

install: $(STAMP)

$(RAY_HOME)/ray_bootstrap_config.yaml:
	@mkdir -p $(RAY_HOME)/mpl
	@echo '{}' > $@

demo: install $(RAY_HOME)/ray_bootstrap_config.yaml
	$(RUN_ENV) $(VENV)/bin/sweeps run sweeps/specs/demo.yaml --results $(RESULTS) --run-id demo
	$(RUN_ENV) $(VENV)/bin/sweeps report --results $(RESULTS) --sweep demo --notebook overview --notebook transfer_and_ensembles --out $(RESULTS)/reports/demo.html
	@echo
	@echo "Parquet metrics: $(RESULTS)/metrics/sweep=demo/run=demo/"
	@echo "HTML report:     $(RESULTS)/reports/demo.html"

test: install $(RAY_HOME)/ray_bootstrap_config.yaml
	$(RUN_ENV) $(PY) -m pytest $(PYTEST_ARGS)

# Side-by-side speed benchmarks (BENCHMARKS.md): prints the table, writes benchmarks/results/.
bench: install $(RAY_HOME)/ray_bootstrap_config.yaml
	$(RUN_ENV) $(PY) -m benchmarks $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy adv_core cluster sweeps analysis

clean:
	rm -rf $(RESULTS) .cache .pytest_cache
