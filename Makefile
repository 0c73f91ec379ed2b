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

.PHONY: install chromium demo test bench lint typecheck clean gpu-wheels redis

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps 'torchattacks==3.5.1'
	@touch $(STAMP)

install: $(STAMP)

# The GCS fault-tolerance test (tests/cluster/test_cluster_gcs_restart.py) runs its own
# redis-server on a free 127.0.0.1 port.
redis:
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)

$(RAY_HOME)/ray_bootstrap_config.yaml:
	@mkdir -p $(RAY_HOME)/mpl
	@echo '{}' > $@

# The report test renders the page in a real headless chromium (Debian's package).
chromium:
	@command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)

demo: install $(RAY_HOME)/ray_bootstrap_config.yaml
	$(RUN_ENV) $(VENV)/bin/sweeps run sweeps/specs/demo.yaml --results $(RESULTS) --run-id demo
	$(RUN_ENV) $(VENV)/bin/sweeps report --results $(RESULTS) --sweep demo --out $(RESULTS)/reports/demo.html
	@echo
	@echo "Parquet metrics: $(RESULTS)/metrics/sweep=demo/run=demo/"
	@echo "Report:          $(RESULTS)/reports/demo.html (and demo.md)"

test: install redis chromium $(RAY_HOME)/ray_bootstrap_config.yaml
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

# Wheels the GPU machine lacks (issue 16: it has torch, numpy, scipy, scikit-learn, safetensors;
# not pydantic or mlxtend), for Python 3.12 on x86-64, into the ignored .whl/ that the device
# call carries: device.run(command="bash benchmarks/gpu_check.sh", carry=[".whl"]).
GPU_WHEELS := pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
	typing-inspection==0.4.5 typing-extensions==4.16.0 mlxtend==0.25.0
gpu-wheels:
	mkdir -p .whl
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		--platform manylinux_2_28_x86_64 --platform any -d .whl $(GPU_WHEELS)
