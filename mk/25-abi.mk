# The C ABI check (docs/versioning.md, "The ABI check"): libabigail describes the built
# libstate.so (exported functions, their parameter types, struct layouts, soname) and
# compares it with the description committed for its soname.
#
#   make abi-check      run by `make test`: fails when the ABI changed and the soname
#                       did not (or a new soname has no recorded description yet)
#   make abi-baseline   record the current ABI as ffi/abi/<soname>.abi (commit it)

TEST_TARGETS += abi-check

ABI_DIR := ffi/abi
ABI_BASELINE := $(ABI_DIR)/$(STATE_SONAME).abi
ABI_SUPPRESSIONS := $(ABI_DIR)/suppressions.abignore
ABI_CURRENT := $(C_BUILD)/$(STATE_SONAME).abi
# No build paths and no source lines in the description: it changes only with the ABI.
ABIDW := abidw --no-corpus-path --no-comp-dir-path --no-show-locs

.PHONY: abi-packages abi-baseline abi-check

abi-packages:
	scripts/ensure-packages.sh abigail-tools

abi-baseline: c-lib abi-packages
	rm -f $(ABI_DIR)/libstate.so.*.abi
	$(ABIDW) $(C_LIB)/libstate.so.$(STATE_LIB_VERSION) --out-file $(ABI_BASELINE)
	@echo "abi-baseline: wrote $(ABI_BASELINE); commit it"

abi-check: c-lib abi-packages
	$(ABIDW) $(C_LIB)/libstate.so.$(STATE_LIB_VERSION) --out-file $(ABI_CURRENT)
	@if [ ! -f $(ABI_BASELINE) ]; then \
	  echo "abi-check: no recorded ABI for $(STATE_SONAME) (recorded: $$(cd $(ABI_DIR) && ls libstate.so.*.abi 2>/dev/null | tr '\n' ' '))."; \
	  echo "  A new soname starts a new ABI: record it with 'make abi-baseline' and commit $(ABI_BASELINE)."; \
	  exit 1; \
	fi
	@rc=0; abidiff --suppressions $(ABI_SUPPRESSIONS) $(ABI_BASELINE) $(ABI_CURRENT) > $(C_BUILD)/abidiff.txt || rc=$$?; \
	if [ $$rc -eq 0 ]; then echo "abi-check: the ABI of $(STATE_SONAME) is unchanged"; exit 0; fi; \
	if [ $$(( rc & 3 )) -ne 0 ]; then cat $(C_BUILD)/abidiff.txt; echo "abi-check: abidiff failed (exit $$rc)"; exit 1; fi; \
	cat $(C_BUILD)/abidiff.txt; \
	if abidiff --no-added-syms --suppressions $(ABI_SUPPRESSIONS) $(ABI_BASELINE) $(ABI_CURRENT) >/dev/null; then \
	  echo "abi-check: functions were added to $(STATE_SONAME) (compatible). Record them: make abi-baseline, and commit $(ABI_BASELINE)."; \
	else \
	  echo "abi-check: the ABI of $(STATE_SONAME) changed (above) and the soname did not."; \
	  echo "  Programs built against $(STATE_SONAME) would break. Bump the version in Cargo.toml so the"; \
	  echo "  soname changes (below 1.0: the minor), then 'make abi-baseline' (docs/versioning.md)."; \
	fi; \
	exit 1
