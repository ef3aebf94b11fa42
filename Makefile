# libstate — the two commands:
#   make        set everything up, build, and run the examples
#   make test   run every test suite (Rust, C, Python)
#
# Each part of the project adds its targets from mk/<part>.mk by appending to
# ALL_TARGETS (run by `make`) and TEST_TARGETS (run by `make test`).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
# Where `make` runs the examples against the default embedded store.
STATE_DIR ?= $(CURDIR)/state-data

ALL_TARGETS :=
TEST_TARGETS :=

include $(sort $(wildcard mk/*.mk))

.PHONY: all test
.DEFAULT_GOAL := all
all: $(ALL_TARGETS)
	@echo "make: done — examples ran against $(STATE_DIR)"

test: $(TEST_TARGETS)
	@echo "make test: every suite passed"
