# C ABI: libstate.so / libstate.a (ffi/), include/state.h, the C example, the C test
# suite (valgrind + ASan/UBSan), pkg-config and `make install`, the opt-in C benchmark.
#
#   make header            regenerate include/state.h with the pinned cbindgen
#   make install PREFIX=…  install lib, header, state.pc and the CMake package (default
#                          /usr/local; also DESTDIR LIBDIR INCLUDEDIR BINDIR; builds nothing)
#   make uninstall …       remove them again (same variables)
#   make bench-c           C vs Rust per-call benchmark (opt-in; docs/bench-c.md)
#   make bench-c-remote    remote state_get vs hiredis GET on one `state serve` (opt-in)

ALL_TARGETS += c-example
TEST_TARGETS += c-header-check c-test c-test-asan c-install-test

CC ?= cc
CXX ?= c++
VALGRIND ?= valgrind

# STATE_LIB_VERSION, STATE_SONAME, C_BUILD, C_LIB, C_BIN and the install
# directories are shared: the top-level Makefile defines them.
# Native libraries a static libstate.a needs (rustc --print native-static-libs on Linux).
STATE_LIBS_PRIVATE := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

C_WARN := -std=c99 -Wall -Wextra -Werror -pedantic
C_FLAGS := $(C_WARN) -O1 -g -D_GNU_SOURCE -I$(CURDIR)/include
C_LINK := -L$(C_LIB) -lstate -Wl,-rpath,$(C_LIB) -lpthread
VALGRIND_FLAGS := --quiet --error-exitcode=99 --fair-sched=yes --leak-check=full \
	--show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
	--track-origins=yes --suppressions=$(CURDIR)/tests/valgrind.supp

.PHONY: c-lib c-example c-header-check c-test c-test-valgrind c-test-remote c-test-asan \
	c-install-test header bench-c bench-c-remote

# The release library, staged as an installed layout would be (real file, soname
# link, dev link) so the C programs load it exactly as users will.
c-lib:
	$(RELEASE_BUILD)
	mkdir -p $(C_LIB) $(C_BIN)
	cp -f target/release/libstate.so $(C_LIB)/libstate.so.$(STATE_LIB_VERSION)
	cp -f target/release/libstate.a $(C_LIB)/libstate.a
	ln -sf libstate.so.$(STATE_LIB_VERSION) $(C_LIB)/$(STATE_SONAME)
	ln -sf $(STATE_SONAME) $(C_LIB)/libstate.so

c-example: c-lib
	$(CC) $(C_FLAGS) examples/c/dashboard.c -o $(C_BIN)/dashboard $(C_LINK)
	$(C_BIN)/dashboard "$(STATE_DIR)"

# The header alone compiles as C99 and as C++ with every warning an error.
c-header-check:
	$(CC) $(C_WARN) -I include -fsyntax-only tests/header_only.c
	$(CXX) -x c++ -std=c++11 -Wall -Wextra -Werror -pedantic -I include -fsyntax-only tests/header_only.c

C_TESTS := test_api test_threads test_watch

c-test: c-lib c-test-valgrind c-test-remote

c-test-valgrind: c-lib
	@for t in $(C_TESTS); do \
	  $(CC) $(C_FLAGS) tests/$$t.c -o $(C_BIN)/$$t $(C_LINK) || exit 1; \
	  echo "valgrind $$t"; \
	  $(VALGRIND) $(VALGRIND_FLAGS) $(C_BIN)/$$t || exit 1; \
	done

# state_connect against a real `state serve` the test starts (tests/test_remote.c,
# memfile and sled, killed and restarted under it), under valgrind; the server is
# the `state` binary c-lib's release build made.
c-test-remote: c-lib
	$(CC) $(C_FLAGS) tests/test_remote.c -o $(C_BIN)/test_remote $(C_LINK)
	@echo "valgrind test_remote"
	$(VALGRIND) $(VALGRIND_FLAGS) $(C_BIN)/test_remote $(CLI_BIN)

# The same tests built with AddressSanitizer + UndefinedBehaviorSanitizer (the
# library itself is not instrumented, but every allocation and free is checked).
c-test-asan: c-lib
	@for t in $(C_TESTS); do \
	  $(CC) $(C_FLAGS) -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
	    tests/$$t.c -o $(C_BIN)/$$t-asan $(C_LINK) || exit 1; \
	  echo "asan+ubsan $$t"; \
	  ASAN_OPTIONS=detect_leaks=1 $(C_BIN)/$$t-asan || exit 1; \
	done
	$(CC) $(C_FLAGS) -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
	  tests/test_remote.c -o $(C_BIN)/test_remote-asan $(C_LINK)
	@echo "asan+ubsan test_remote"
	ASAN_OPTIONS=detect_leaks=1 $(C_BIN)/test_remote-asan $(CLI_BIN)

# Installation (`make install`, docs/c.md). Directories are GNU's names; DESTDIR is
# put in front of each when copying (staged installs, packaging) and never written into
# the installed files. Install builds nothing: it copies what `make` built, so it can
# run as root without compiling as root; it fails, naming the file, when something is
# missing.
C_ARTEFACTS := $(C_LIB)/libstate.so.$(STATE_LIB_VERSION) $(C_LIB)/libstate.a
# A directory as written into state.pc and the CMake files: under PREFIX it is given
# relative to it (${prefix}/lib, ${_libstate_prefix}/lib), so a relocated tree still
# works (pkg-config --define-prefix, CMake from its own location); elsewhere absolute.
under_prefix = $(if $(filter $(PREFIX)/%,$(2)),$(1)/$(patsubst $(PREFIX)/%,%,$(2)),$(2))

.PHONY: install uninstall c-install c-uninstall c-artefacts

install: c-install
uninstall: c-uninstall

c-artefacts:
	@for f in $(C_ARTEFACTS); do \
	  if [ ! -f "$$f" ]; then \
	    echo "make install: $$f is missing. Build first, as your own user: make (or make c-lib);"; \
	    echo "  make install then only copies (it builds nothing)."; exit 1; \
	  fi; \
	done

c-install: c-artefacts
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(CMAKEDIR) \
	  $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(DATADIR)/libstate
	install -m 0755 $(C_LIB)/libstate.so.$(STATE_LIB_VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libstate.so.$(STATE_LIB_VERSION) $(DESTDIR)$(LIBDIR)/$(STATE_SONAME)
	ln -sf $(STATE_SONAME) $(DESTDIR)$(LIBDIR)/libstate.so
	install -m 0644 $(C_LIB)/libstate.a $(DESTDIR)$(LIBDIR)/
	install -m 0644 include/state.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 0644 tests/valgrind.supp $(DESTDIR)$(DATADIR)/libstate/valgrind.supp
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(STATE_LIB_VERSION)|' \
	    -e 's|@LIBDIR@|$(call under_prefix,$${prefix},$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR@|$(call under_prefix,$${prefix},$(INCLUDEDIR))|' \
	    -e 's|@LIBS_PRIVATE@|$(STATE_LIBS_PRIVATE)|' ffi/state.pc.in \
	    > $(DESTDIR)$(PKGCONFIGDIR)/state.pc
	rel=$$(realpath -m --relative-to=$(CMAKEDIR) $(PREFIX)); \
	for f in libstateConfig.cmake libstateConfigVersion.cmake; do \
	  sed -e "s|@PREFIX_FROM_HERE@|$$rel|" -e 's|@VERSION@|$(STATE_LIB_VERSION)|' \
	      -e 's|@MAJOR@|$(STATE_LIB_MAJOR)|' -e 's|@MINOR@|$(STATE_LIB_MINOR)|' \
	      -e 's|@SONAME@|$(STATE_SONAME)|' \
	      -e 's|@LIBDIR@|$(call under_prefix,$${_libstate_prefix},$(LIBDIR))|' \
	      -e 's|@INCLUDEDIR@|$(call under_prefix,$${_libstate_prefix},$(INCLUDEDIR))|' \
	      -e 's|@LIBS_PRIVATE@|$(patsubst -l%,%,$(filter-out -lpthread,$(STATE_LIBS_PRIVATE)))|' \
	      ffi/cmake/$$f.in > $(DESTDIR)$(CMAKEDIR)/$$f; \
	done

# Removes exactly what c-install put there, then the directories of libstate's own.
c-uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libstate.so.$(STATE_LIB_VERSION) $(DESTDIR)$(LIBDIR)/$(STATE_SONAME) \
	  $(DESTDIR)$(LIBDIR)/libstate.so $(DESTDIR)$(LIBDIR)/libstate.a \
	  $(DESTDIR)$(INCLUDEDIR)/state.h $(DESTDIR)$(PKGCONFIGDIR)/state.pc \
	  $(DESTDIR)$(DATADIR)/libstate/valgrind.supp \
	  $(DESTDIR)$(CMAKEDIR)/libstateConfig.cmake $(DESTDIR)$(CMAKEDIR)/libstateConfigVersion.cmake
	-rmdir $(DESTDIR)$(DATADIR)/libstate $(DESTDIR)$(CMAKEDIR) 2>/dev/null

# Installs into a temporary prefix and builds a program the documented way:
# `cc app.c $(pkg-config --cflags --libs state)`, shared and static.
c-install-test: c-lib
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(MAKE) --no-print-directory c-install PREFIX="$$tmp/prefix" >/dev/null; \
	export PKG_CONFIG_PATH="$$tmp/prefix/lib/pkgconfig"; \
	test "$$(pkg-config --modversion state)" = "$(STATE_LIB_VERSION)"; \
	test -s "$$tmp/prefix/share/libstate/valgrind.supp"; \
	$(CC) $(C_WARN) tests/install_check.c -o "$$tmp/app" $$(pkg-config --cflags --libs state); \
	LD_LIBRARY_PATH="$$tmp/prefix/lib" "$$tmp/app" "$$tmp/data"; \
	readelf -d "$$tmp/app" | grep -q 'NEEDED.*\[$(STATE_SONAME)\]'; \
	$(CC) $(C_WARN) tests/install_check.c -o "$$tmp/app-static" \
	  $$(pkg-config --cflags state) "$$tmp/prefix/lib/libstate.a" $$(pkg-config --static --libs-only-l state | sed "s/-lstate //"); \
	"$$tmp/app-static" "$$tmp/data2"; \
	echo "install + pkg-config: shared and static programs build and run"

header:
	STATE_UPDATE_HEADER=1 $(CARGO) test -q -p state-ffi --test header committed_header_matches_generated

# Opt-in: C API vs Rust API per-call cost (docs/bench-c.md).
bench-c: c-lib
	$(CC) -std=c99 -O2 -D_GNU_SOURCE -I include tests/bench.c -o $(C_BIN)/bench $(C_LINK)
	$(RELEASE_BUILD) --example bench_rust
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "== C API"; $(C_BIN)/bench "$$tmp/c"; \
	echo "== Rust API"; target/release/examples/bench_rust "$$tmp/rust"

# Opt-in: a remote state_get (state_connect over the Unix socket) beside hiredis's
# GET on the same `state serve` in one run, and a get_multiple of 1000 keys beside
# MGET (docs/c.md, "Connecting to a server"). BENCH_REMOTE_ARGS: calls per round, rounds.
BENCH_REMOTE_ARGS ?= 20000 7
bench-c-remote: c-lib server-packages
	$(CC) -std=c99 -O2 -D_GNU_SOURCE -I include tests/bench_remote.c -o $(C_BIN)/bench_remote \
	  $(C_LINK) -lhiredis
	scripts/with-server.sh $(CLI_BIN) bash -c '$(C_BIN)/bench_remote $$STATE_SOCK $(BENCH_REMOTE_ARGS)'

# The Redis engine through the C ABI, against a redis-server started on a Unix
# socket in a temporary directory (and stopped after).
TEST_TARGETS += c-test-redis
.PHONY: c-test-redis
c-test-redis: c-lib redis-packages
	$(CC) $(C_FLAGS) tests/test_redis.c -o $(C_BIN)/test_redis $(C_LINK)
	@set -e; tmp=$$(mktemp -d); \
	redis-server --port 0 --unixsocket "$$tmp/r.sock" --dir "$$tmp" --save "" --appendonly no \
	  --daemonize yes --pidfile "$$tmp/r.pid" >/dev/null; \
	trap 'kill $$(cat "$$tmp/r.pid") 2>/dev/null; rm -rf "$$tmp"' EXIT; \
	for i in $$(seq 500); do redis-cli -s "$$tmp/r.sock" ping 2>/dev/null | grep -q PONG && break; sleep 0.01; done; \
	$(C_BIN)/test_redis "redis+unix://$$tmp/r.sock?namespace=ctest"
