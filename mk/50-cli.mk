# The `state` command-line tool (cli/, crate state-cli).
#
#   make                       builds it and runs a short demo session (cli-demo)
#   make test                  its tests run in rust-test (`cargo test --workspace`
#                              includes cli/tests/); cli-install-test checks the install
#   make install-cli PREFIX=…  installs bin/state, man pages, completions (default
#                              /usr/local; DESTDIR, BINDIR, MANDIR honoured; builds nothing)
#   make bench-cli             times 100K-record loads and dumps (opt-in; docs/bench-cli.md)

ALL_TARGETS += cli-demo
TEST_TARGETS += cli-install-test

CLI_DEMO := $(CURDIR)/target/cli-demo

.PHONY: cli-build cli-demo cli-test cli-install-test install-cli uninstall-cli bench-cli

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
uninstall: uninstall-cli

# The tool, its man pages and its shell completions (made by the installed binary's
# hidden `state generate`, from its own command-line definition). Builds nothing
# (see c-install in mk/20-c.mk); BINDIR, MANDIR, DATADIR and DESTDIR are honoured.
CLI_COMPLETIONS := bash-completion/completions/state zsh/site-functions/_state \
	fish/vendor_completions.d/state.fish

install-cli:
	@test -x $(CLI_BIN) || { echo "make install: $(CLI_BIN) is missing. Build first, as your own user: make (or make cli-build);"; \
	  echo "  make install then only copies (it builds nothing)."; exit 1; }
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(addprefix $(DESTDIR)$(DATADIR)/,$(dir $(CLI_COMPLETIONS)))
	install -m 0755 $(CLI_BIN) $(DESTDIR)$(BINDIR)/state
	@set -e; gen=$$(mktemp -d); trap 'rm -rf "$$gen"' EXIT; \
	$(CLI_BIN) generate "$$gen" >/dev/null; \
	install -m 0644 "$$gen"/man1/*.1 $(DESTDIR)$(MANDIR)/man1/; \
	install -m 0644 "$$gen"/completions/state $(DESTDIR)$(DATADIR)/bash-completion/completions/state; \
	install -m 0644 "$$gen"/completions/_state $(DESTDIR)$(DATADIR)/zsh/site-functions/_state; \
	install -m 0644 "$$gen"/completions/state.fish $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/state.fish; \
	echo "installed $(DESTDIR)$(BINDIR)/state, its man pages and completions"

uninstall-cli:
	rm -f $(DESTDIR)$(BINDIR)/state $(DESTDIR)$(MANDIR)/man1/state.1 $(DESTDIR)$(MANDIR)/man1/state-*.1 \
	  $(addprefix $(DESTDIR)$(DATADIR)/,$(CLI_COMPLETIONS))

# Installs into a temporary prefix and runs the installed binary.
cli-install-test: cli-build
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(MAKE) --no-print-directory install-cli PREFIX="$$tmp/prefix" >/dev/null; \
	test -x "$$tmp/prefix/bin/state"; \
	test -s "$$tmp/prefix/share/man/man1/state-serve.1"; \
	test -s "$$tmp/prefix/share/bash-completion/completions/state"; \
	"$$tmp/prefix/bin/state" --version | grep -q '^state '; \
	"$$tmp/prefix/bin/state" --store "$$tmp/data" set b k v; \
	test "$$("$$tmp/prefix/bin/state" --store "$$tmp/data" get b k)" = v; \
	echo "install-cli: the installed state binary runs"

# Opt-in: 100K-record load/dump timings for docs/bench-cli.md.
bench-cli: cli-build
	bash cli/bench/load.sh "$(CLI_BIN)"
