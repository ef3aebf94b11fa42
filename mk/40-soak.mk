# Soak: the SIGKILL crash tests of both engines with many more kills, and the memfile
# engine's disk-fault and power-loss tests with many more cases (opt-in, not part of
# `make test`). STATE_CRASH_KILLS sets kills per test (4 tests); STATE_FAULT_CASES the
# random fault schedules of core/tests/memfile/fault_schedule.rs; STATE_CRASH_IMAGES
# the power-loss images of core/tests/memfile/power_loss.rs. Each of those two prints
# its count (faults injected, images checked). LIBSTATE_TEST_SCALE=full runs the
# conformance suite's volume cases at full size on every engine (100K expiring among
# 1M persistent records; 64 model cases on the Redis engines too), a tenth in make test.

SOAK_KILLS ?= 500
SOAK_FAULT_CASES ?= 2000
SOAK_CRASH_IMAGES ?= 5000

.PHONY: soak soak-memfile-faults soak-conformance
soak: soak-memfile-faults soak-conformance
	STATE_CRASH_KILLS=$(SOAK_KILLS) $(CARGO) test --release -p state-core \
		--test crash_memfile --test crash_sled

soak-memfile-faults:
	STATE_FAULT_CASES=$(SOAK_FAULT_CASES) STATE_CRASH_IMAGES=$(SOAK_CRASH_IMAGES) \
		$(CARGO) test --release -p state-core --test memfile -- fault_schedule:: power_loss::

soak-conformance: redis-packages
	LIBSTATE_TEST_SCALE=full $(CARGO) test --release -p state-core --test conformance -- \
		sweeping_expiring_among_persistent random_operations_match_a_btreemap_model
