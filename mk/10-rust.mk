# Rust: the workspace, the Rust example, lints, tests, benchmarks.

ALL_TARGETS += rust-example
TEST_TARGETS += rust-lint rust-test

.PHONY: rust-build rust-example rust-lint rust-test
rust-build:
	$(CARGO) build --release --workspace

rust-example: rust-build
	$(CARGO) run --release -q -p dashboard-example -- "$(STATE_DIR)"

rust-lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

rust-test:
	$(CARGO) test --workspace
