# The `state` command-line tool (cli/, crate state-cli).
#
#   make                       builds it and runs a short demo session (cli-demo)
#   make test                  its tests run in rust-test (`cargo test --workspace`
#                              includes cli/tests/); cli-install-test checks the install
#   make install-cli PREFIX=…  installs bin/state (default /usr/local; DESTDIR honoured)
#   make bench-cli             times 100K-record loads and dumps (opt-in; docs/bench-cli.md)

ALL_TARGETS += cli-demo
TEST_TARGETS += cli-install-test

PREFIX ?= /usr/local
CLI_BIN := $(CURDIR)/target/release/state
CLI_DEMO := $(CURDIR)/target/cli-demo

.PHONY: cli-build cli-demo cli-test cli-install-test install-cli bench-cli

cli-build:
	$(RELEASE_BUILD)

# A scratch store of its own: the examples' $(STATE_DIR) may be open in another
# example while make runs targets in parallel, and one process owns a store at a time.
cli-demo: cli-build
	@rm -rf "$(CLI_DEMO)"
	@set -x; S="$(CLI_BIN) --store $(CLI_DEMO)/store"; \
	$$S set user1 layout '{"cols":3}'; \
	$$S set user1 session token --ttl 30m; \
	$$S get user1 layout; \
	$$S keys user1 --values; \
	$$S ttl user1 session; \
	$$S dump --format jsonl -o "$(CLI_DEMO)/dump.jsonl"; \
	"$(CLI_BIN)" --store "$(CLI_DEMO)/copy" load "$(CLI_DEMO)/dump.jsonl"; \
	$$S check

# Just the CLI's tests (make test runs them through rust-test).
cli-test:
	$(CARGO) test -p state-cli

install: install-cli

install-cli: cli-build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(CLI_BIN) $(DESTDIR)$(PREFIX)/bin/state

# Installs into a temporary prefix and runs the installed binary.
cli-install-test: cli-build
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(MAKE) --no-print-directory install-cli PREFIX="$$tmp/prefix" >/dev/null; \
	test -x "$$tmp/prefix/bin/state"; \
	"$$tmp/prefix/bin/state" --version | grep -q '^state '; \
	"$$tmp/prefix/bin/state" --store "$$tmp/data" set b k v; \
	test "$$("$$tmp/prefix/bin/state" --store "$$tmp/data" get b k)" = v; \
	echo "install-cli: the installed state binary runs"

# Opt-in: 100K-record load/dump timings for docs/bench-cli.md.
bench-cli: cli-build
	bash cli/bench/load.sh "$(CLI_BIN)"
