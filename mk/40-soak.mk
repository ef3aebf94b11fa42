# Soak: the SIGKILL crash tests of both engines with many more kills (opt-in,
# not part of `make test`). STATE_CRASH_KILLS sets kills per test (4 tests).

SOAK_KILLS ?= 500

.PHONY: soak
soak:
	STATE_CRASH_KILLS=$(SOAK_KILLS) $(CARGO) test --release -p state-core \
		--test crash_memfile --test crash_sled
