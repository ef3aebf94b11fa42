# Fuzzing (opt-in): cargo-fuzz targets under fuzz/ on a nightly toolchain.
#
#   make fuzz                 runs every target for FUZZ_SECONDS (default 60) each
#   make fuzz FUZZ_TARGETS=resp FUZZ_SECONDS=600
#
# The corpora in fuzz/corpus/ are replayed as ordinary tests on stable by
# `make test` (core/tests/fuzz_corpus.rs, service/tests/fuzz_corpus.rs,
# server/tests/fuzz_corpus.rs).
# The checks create stores and files per input: they run in FUZZ_TMPDIR (tmpfs where
# there is one), where an fsync costs nothing. New inputs go to
# fuzz/target/new-corpus/<target>, not into the checked-in corpus (merge the ones
# worth keeping with `cargo fuzz cmin`); each target ends with libFuzzer's count of
# executions ("Done N runs in S second(s)").

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
	  mkdir -p fuzz/target/new-corpus/$$t; \
	  (cd fuzz && TMPDIR=$(FUZZ_TMPDIR) cargo +nightly fuzz run $$t target/new-corpus/$$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 2>&1 | tee target/fuzz-$$t.log; exit $${PIPESTATUS[0]}) || exit 1; \
	  echo "fuzz $$t: $$(grep -E '^Done [0-9]+ runs' fuzz/target/fuzz-$$t.log | tail -n 1)"; \
	done
