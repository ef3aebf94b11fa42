# Python: the `libstate` package (bindings/python), its example, tests and benchmark.
#
# Everything runs in a project-local virtualenv (.venv) that this fragment creates and
# fills itself. The package is installed the way users install it,
# `pip install ./bindings/python`, and reinstalled only when its sources change.

PYDIR := bindings/python
PY_TOOLS := "maturin>=1.9.4,<2" "pytest>=8" "hypothesis>=6.100" "mypy>=1.10"
PY_BENCH_PEERS := lmdb plyvel rocksdict diskcache sqlitedict
PY_SOURCES := $(shell find core/src $(PYDIR)/src $(PYDIR)/python -type f \
	\( -name '*.rs' -o -name '*.py' -o -name '*.pyi' -o -name 'py.typed' \) 2>/dev/null) \
	core/Cargo.toml $(PYDIR)/Cargo.toml $(PYDIR)/pyproject.toml Cargo.toml Cargo.lock \
	mk/30-python.mk
PY_EXAMPLE_DIR ?= $(STATE_DIR)

ALL_TARGETS += python-example
TEST_TARGETS += python-test

.PHONY: python-venv python-install python-example python-test python-lint bench-python \
	bench-python-remote

$(VENV)/.tools-installed:
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet $(PY_TOOLS)
	touch $@

python-venv: $(VENV)/.tools-installed

# The wheel build shares the workspace's target dir, but maturin builds this one
# crate alone, and cargo resolves features per invocation: the crates whose features
# differ from the workspace build's (libc, serde, rustls, ... and so the core and sled)
# are compiled again for it, about 90 units (bindings/python/Cargo.toml aligns them).
# pyo3 is built without its reference pool: see .cargo/config.toml.

$(VENV)/.libstate-installed: $(VENV)/.tools-installed $(PY_SOURCES)
	$(VPY) -m pip install --quiet --force-reinstall --no-deps ./$(PYDIR)
	touch $@

python-install: $(VENV)/.libstate-installed

python-example: python-install
	$(VPY) examples/python/dashboard.py "$(PY_EXAMPLE_DIR)"

# Stubs against the runtime, the example under mypy --strict, then the test suite.
python-lint: python-install
	cd $(PYDIR) && $(VPY) -m mypy.stubtest libstate
	$(VPY) -m mypy --strict examples/python/dashboard.py examples/python/remote_record.py \
		$(PYDIR)/python/libstate

# cli-build: tests/test_remote.py starts the `state serve` of target/release/state.
python-test: python-lint redis-packages cli-build
	cd $(PYDIR) && STATE_BIN=$(CLI_BIN) $(VPY) -m pytest -q -p no:cacheprovider tests

# Opt-in: libstate against the Python stores people use today, in one run
# (docs/bench-python.md). BENCH_N=1000000 for the 1M-record table.
BENCH_N ?= 100000
BENCH_DIR ?= $(CURDIR)/target/bench-python
PY_BENCH := $(PYDIR)/bench/bench.py
# dbm.gnu needs an interpreter with _gdbm: Debian's python3 with python3-gdbm (tried
# when apt-get is usable; the run skips dbm.gnu otherwise).
bench-python: python-install
	$(VPY) -m pip install --quiet $(PY_BENCH_PEERS)
	-if ! /usr/bin/python3 -c 'import dbm.gnu' 2>/dev/null && command -v apt-get >/dev/null; then \
		apt-get update -q && apt-get install -y -q python3-gdbm; fi
	mkdir -p $(BENCH_DIR)
	$(VPY) $(PY_BENCH) gil --n $(BENCH_N) --dir $(BENCH_DIR) --out $(BENCH_DIR)/gil-$(BENCH_N).json
	$(VPY) $(PY_BENCH) all --n $(BENCH_N) --dir $(BENCH_DIR) \
		--python dbm.gnu=/usr/bin/python3 --out $(BENCH_DIR)/results-$(BENCH_N).json
	$(VPY) $(PY_BENCH) report $(BENCH_DIR)/results-$(BENCH_N).json

# Opt-in: a remote get (libstate.connect) beside redis-py's GET on the same state
# serve, and get_many(1000) beside MGET (issue 28's goal; docs/python.md).
bench-python-remote: python-install cli-build
	$(VPY) -m pip install --quiet "redis>=5"
	$(VPY) $(PYDIR)/bench/remote.py --state $(CLI_BIN)
