# libstate — the two commands:
#   make        set everything up, build, and run the examples
#   make test   run every test suite (Rust, C, Python)
#
# Each part of the project adds its targets from mk/<part>.mk by appending to
# ALL_TARGETS (run by `make`) and TEST_TARGETS (run by `make test`).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Shared variables: defined here, before any mk/*.mk, so no part depends on the
# order the parts are included in. A part's own variables stay in its file.
CARGO ?= cargo
PYTHON ?= python3
# Where `make` runs the examples against the default embedded store.
STATE_DIR ?= $(CURDIR)/state-data
# The Python virtualenv every Python-using part shares.
VENV := $(CURDIR)/.venv
VPY := $(VENV)/bin/python
# The `state` tool as `make` builds it (the CLI, server, bench and dist parts run it).
CLI_BIN := $(CURDIR)/target/release/state
# The C library's build tree (the C, ABI and dist parts).
C_BUILD := $(CURDIR)/target/c
C_LIB := $(C_BUILD)/lib
C_BIN := $(C_BUILD)/bin
# The version (one, from Cargo.toml) and the C library's soname: must match
# ffi/build.rs (below 1.0 a minor release may break the ABI).
STATE_LIB_VERSION := $(shell sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
STATE_LIB_MAJOR := $(word 1,$(subst ., ,$(STATE_LIB_VERSION)))
STATE_LIB_MINOR := $(word 2,$(subst ., ,$(STATE_LIB_VERSION)))
STATE_ABI := $(if $(filter 0,$(STATE_LIB_MAJOR)),0.$(STATE_LIB_MINOR),$(STATE_LIB_MAJOR))
STATE_SONAME := libstate.so.$(STATE_ABI)
# Install locations (`make install`, `make uninstall`, the packages).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR ?= $(LIBDIR)/cmake/libstate

ALL_TARGETS :=
TEST_TARGETS :=

include $(sort $(wildcard mk/*.mk))

.PHONY: all test
.DEFAULT_GOAL := all
all: $(ALL_TARGETS)
	@echo "make: done — examples ran against $(STATE_DIR)"

test: $(TEST_TARGETS)
	@echo "make test: every suite passed"
