# Rust: the workspace, the Rust example, lints, tests, benchmarks.

ALL_TARGETS += rust-example
TEST_TARGETS += rust-lint rust-unused-deps rust-test

# Every release artefact the make targets use (the Rust example, libstate.so/.a, the
# `state` binary) comes from this one cargo invocation: the first target that runs
# it builds them all, the others find them built. Cargo resolves features per
# invocation, so `cargo build -p state-ffi` (or `cargo run -p ...`) would compile
# the core and its dependencies again with other features. The Python extension is
# maturin's to build (mk/30-python.mk), so it is left out here (built here too, it would
# be rebuilt by every release build after maturin's, which sets pyo3's environment).
# Its features are aligned with this build's (bindings/python/Cargo.toml and
# examples/rust/Cargo.toml, "Build alignment"; scripts/feature_alignment.py checks
# them), so the wheel build compiles only pyo3 and the extension, not the core and ~90
# crates again.
RELEASE_BUILD = $(CARGO) build --release --workspace --exclude libstate-python

.PHONY: rust-build rust-example rust-lint rust-unused-deps rust-test redis-packages
rust-build:
	$(RELEASE_BUILD)

rust-example: rust-build
	target/release/dashboard-example "$(STATE_DIR)"

# scripts/feature_alignment.py keeps the wheel build from compiling the core a second
# time (see RELEASE_BUILD above): a dependency change that breaks that is reported here.
rust-lint:
	$(CARGO) fmt --all -- --check
	$(PYTHON) scripts/feature_alignment.py
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Unused dependencies ([dependencies], [dev-dependencies] and [build-dependencies]) of
# every crate: the workspace's, then fuzz/ (a workspace of its own). cargo-shear reads
# the sources without compiling them; it is pinned, and installed from crates.io on
# first use into a directory of its own, kept across clones (SHEAR_ROOT= to choose
# another). A dependency used where it cannot see goes in the crate's
# [package.metadata.cargo-shear] ignored list, saying why.
SHEAR_VERSION := 1.11.0
SHEAR_ROOT ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/libstate/cargo-shear-$(SHEAR_VERSION)
SHEAR := $(SHEAR_ROOT)/bin/cargo-shear

# Its own release profile asks for fat LTO and one codegen unit, which on CI's two
# cores made the one-time install cost about 165 CPU seconds; a tool that reads a few
# hundred files needs neither, so the install overrides them (TOOL_PROFILE).
TOOL_PROFILE := CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
	CARGO_PROFILE_RELEASE_OPT_LEVEL=1
$(SHEAR):
	@echo "rust-unused-deps: installing cargo-shear $(SHEAR_VERSION) (crates.io) into $(SHEAR_ROOT)"
	$(TOOL_PROFILE) $(CARGO) install --locked --quiet --version $(SHEAR_VERSION) --root "$(SHEAR_ROOT)" cargo-shear

rust-unused-deps: $(SHEAR)
	$(SHEAR) --color never .
	$(SHEAR) --color never fuzz

# The Redis engine's tests (core/tests/redis_*.rs) start real redis-server processes;
# the client's TLS test (cli/tests/remote_client.rs) makes its certificates with openssl.
redis-packages:
	scripts/ensure-packages.sh redis-server redis-tools openssl

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
