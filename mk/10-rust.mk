# Rust: the workspace, the Rust example, lints, tests, benchmarks.

ALL_TARGETS += rust-example
TEST_TARGETS += rust-lint rust-test

.PHONY: rust-build rust-example rust-lint rust-test bench redis-packages
rust-build:
	$(CARGO) build --release --workspace

rust-example: rust-build
	$(CARGO) run --release -q -p dashboard-example -- "$(STATE_DIR)"

rust-lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The Redis engine's tests (core/tests/redis_*.rs) start real redis-server processes.
redis-packages:
	scripts/ensure-packages.sh redis-server redis-tools

rust-test: redis-packages
	$(CARGO) test --workspace

# Opt-in: the criterion benchmarks behind docs/benchmarks.md (tens of minutes).
bench:
	$(CARGO) bench -p state-core
