# Benchmarks of the Rust core, their tables and the charts of the benchmark docs.
#
#   make bench          criterion `ops` benchmark (about ten minutes), the tables of
#                       docs/benchmarks.md rewritten from its results, then the charts
#   make bench-charts   redraw docs/img/*.png from the tables in the docs only
#
#   make bench-memory   peak RSS and time of loading 1M records in 10K-record batches
#                       and of opening that store, sled engine, each in its own process
#
# The other pages have their own commands (docs/benchmarks.md lists them): bench-python,
# bench-c, bench-cli, bench-service, and `cargo bench -p state-core --bench memfile`.

# Sizes of the ops benchmark (records); 1000000 adds the 1M-record table (slow).
LIBSTATE_BENCH_SIZES ?= 1000,100000
CRITERION_DIR = $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/criterion

.PHONY: bench bench-charts bench-memory

bench:
	LIBSTATE_BENCH_SIZES=$(LIBSTATE_BENCH_SIZES) $(CARGO) bench -p state-core --bench ops
	$(PYTHON) scripts/bench_table.py --write docs/benchmarks.md "$(CRITERION_DIR)"
	$(MAKE) --no-print-directory bench-charts

$(VENV)/.charts-installed:
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet "matplotlib>=3.8,<4"
	touch $@

bench-charts: $(VENV)/.charts-installed
	$(VPY) scripts/bench_charts.py --docs docs --out docs/img

# docs/benchmarks.md, section 3 (about a minute; LIBSTATE_BENCH_RECORDS, _BATCH,
# _CACHE_MIB and _VARIANTS change the run, see core/benches/load_rss.rs).
bench-memory:
	$(CARGO) bench -p state-core --bench load_rss

# Opt-in: the Redis engine beside the raw redis crate, one run against one
# redis-server it starts (docs/scale-out.md, "Benchmark").
.PHONY: bench-redis
bench-redis: redis-packages
	$(CARGO) bench -p state-core --bench redis

# Opt-in: watch throughput and in-process latency, then delivery over RESP and SSE
# on loopback (docs/watch.md, "Performance").
.PHONY: bench-watch
bench-watch: cli-build python-venv
	$(CARGO) bench -p state-core --bench watch
	$(VPY) -m pip install --quiet "redis>=5" "httpx>=0.27"
	$(VPY) server/bench/watch_latency.py $(CLI_BIN) 2000
