# Fuzzing (opt-in): cargo-fuzz targets under fuzz/ on a nightly toolchain.
#
#   make fuzz                 runs every target for FUZZ_SECONDS (default 60) each
#   make fuzz FUZZ_TARGETS=resp FUZZ_SECONDS=600
#
# The corpora in fuzz/corpus/ are replayed as ordinary tests on stable by
# `make test` (core/tests/fuzz_corpus.rs, server/tests/fuzz_corpus.rs).
# The checks create stores and files per input: they run in FUZZ_TMPDIR (tmpfs where
# there is one), where an fsync costs nothing.

FUZZ_SECONDS ?= 60
FUZZ_TMPDIR ?= $(if $(wildcard /dev/shm),/dev/shm,$(or $(TMPDIR),/tmp))
FUZZ_TARGETS ?= resp service http import memfile_log memfile_snapshot

.PHONY: fuzz
fuzz:
	@if ! rustup toolchain list | grep -q '^nightly'; then \
	  echo "make fuzz needs a nightly toolchain (rustup toolchain install nightly); this machine has none"; exit 1; fi
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t for $(FUZZ_SECONDS)s"; \
	  (cd fuzz && TMPDIR=$(FUZZ_TMPDIR) cargo +nightly fuzz run $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096) || exit 1; \
	done
