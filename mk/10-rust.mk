# Rust: the workspace, the Rust example, lints, tests, benchmarks.

ALL_TARGETS += rust-example
TEST_TARGETS += rust-lint rust-test

.PHONY: rust-build rust-example rust-lint rust-test redis-packages
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

# Opt-in: the memfile engine's in-memory state (core/src/engine/memfile/state.rs, whose
# in-place overwrite is unsafe code) under Miri, which needs a nightly toolchain with
# the miri component; where there is none this says so and runs nothing.
MIRI_TOOLCHAIN ?= nightly
.PHONY: miri
miri:
	@if $(CARGO) +$(MIRI_TOOLCHAIN) miri --version >/dev/null 2>&1; then \
	  set -x; $(CARGO) +$(MIRI_TOOLCHAIN) miri test -p state-core --lib engine::memfile::state; \
	else \
	  echo "make miri: SKIPPED - no Miri on this machine (toolchain '$(MIRI_TOOLCHAIN)')."; \
	  echo "  Install it with: rustup toolchain install $(MIRI_TOOLCHAIN) --component miri"; \
	fi
