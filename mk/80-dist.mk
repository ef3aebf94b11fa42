# Release artefacts (docs/releasing.md). Nothing here uploads anything.
#
#   make dist        builds every artefact into dist/ and writes dist/SHA256SUMS:
#                      libstate-VERSION-linux-x86_64.tar.gz   C library (.so with soname
#                        links, .a), state.h, state.pc, CMake package, the state tool, its
#                        man pages and completions, LICENSE
#                      libstate-VERSION-cp311-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
#                        libstate-VERSION.tar.gz                Python wheel and sdist
#                      libstate-tools_VERSION-1_amd64.deb       state + libstate.service
#   make dist-test   checks the artefacts as users meet them (below); make test runs
#                    all of it but the wheel (dist-test-python)
#   make install-test  make install / uninstall with every directory variable
#   make core-no-default-features   the core builds without its `redis` feature
#   make deny        cargo-deny: licences, bans, sources and RustSec advisories (deny.toml)

# make test runs every check below except the wheel's: building the manylinux wheel
# is a second release build of the core with zig's linker (several minutes on CI's two
# cores, past make test's 20-minute budget). `make dist-test` runs all four parts.
TEST_TARGETS += core-no-default-features install-test dist-test-c dist-test-cmake dist-test-deb

DIST := $(CURDIR)/dist
DIST_NAME := libstate-$(STATE_LIB_VERSION)-linux-x86_64
DIST_TARBALL := $(DIST)/$(DIST_NAME).tar.gz
DIST_WHEEL_TAG := cp311-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64
DIST_WHEEL := $(DIST)/libstate-$(STATE_LIB_VERSION)-$(DIST_WHEEL_TAG).whl
DIST_SDIST := $(DIST)/libstate-$(STATE_LIB_VERSION).tar.gz
DEB_NAME := libstate-tools
DIST_DEB := $(DIST)/$(DEB_NAME)_$(STATE_LIB_VERSION)-1_amd64.deb
DIST_STAGE := $(CURDIR)/target/dist-stage
# Outside target/: cargo-deb treats asset paths under target/ as its own build output.
DEB_GEN := $(CURDIR)/cli/debian/gen
# Archive timestamps and the Debian changelog date: the last commit's, so a rebuild of
# the same commit gives the same tarball. Passed to the packaging commands only, not
# exported: the cc crate reruns build scripts when it changes, so exporting it would
# rebuild ring and everything above it whenever make and plain cargo alternate.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
# The tools the wheel is built and checked with, in the project's .venv: maturin's
# --zig links against an old glibc (manylinux_2_17) with zig's linker; auditwheel
# checks the result.
PY_DIST_TOOLS := "ziglang>=0.13,<0.18" "auditwheel>=6"
# The zig-linked build has a target directory of its own, so it and the ordinary
# builds (python-install, c-lib) do not keep invalidating each other's artefacts.
ZIG_TARGET := $(CURDIR)/target/zig
# cargo-deb, installed with cargo when missing (pinned for reproducible packages).
CARGO_DEB_VERSION ?= 3.8.0
DIST_PKGS := lintian dpkg-dev cmake pkgconf binutils systemd

.PHONY: core-no-default-features dist dist-c dist-python dist-deb dist-sums dist-packages dist-test \
	dist-test-c dist-test-cmake dist-test-python dist-test-deb install-test deny

# The Redis engine is an optional feature of state-core (on by default everywhere):
# the core must keep building without it.
core-no-default-features:
	$(CARGO) clippy -p state-core --no-default-features -- -D warnings

dist: dist-c dist-python dist-deb
	$(MAKE) --no-print-directory dist-sums

dist-sums:
	cd $(DIST) && sha256sum $(notdir $(DIST_TARBALL) $(DIST_WHEEL) $(DIST_SDIST) $(DIST_DEB)) > SHA256SUMS
	@cat $(DIST)/SHA256SUMS

dist-packages:
	scripts/ensure-packages.sh $(DIST_PKGS)

# The C tarball: `make install` into a staging directory (PREFIX=/usr/local, so the
# .pc and CMake files name the usual place), debug info stripped, the top directory
# renamed to libstate-VERSION-linux-x86_64.
dist-c: c-lib cli-build dist-packages
	rm -rf $(DIST_STAGE) && mkdir -p $(DIST)
	$(MAKE) --no-print-directory install DESTDIR=$(DIST_STAGE) PREFIX=/usr/local >/dev/null
	mv $(DIST_STAGE)/usr/local $(DIST_STAGE)/$(DIST_NAME)
	strip --strip-debug $(DIST_STAGE)/$(DIST_NAME)/lib/libstate.so.$(STATE_LIB_VERSION) \
	  $(DIST_STAGE)/$(DIST_NAME)/lib/libstate.a
	strip $(DIST_STAGE)/$(DIST_NAME)/bin/state
	install -m 0644 LICENSE README.md CHANGELOG.md SECURITY.md $(DIST_STAGE)/$(DIST_NAME)/
	tar -C $(DIST_STAGE) --sort=name --owner=0 --group=0 --numeric-owner \
	  --mtime=@$(SOURCE_DATE_EPOCH) -cf - $(DIST_NAME) | gzip -9n > $(DIST_TARBALL)
	@echo "dist-c: $(DIST_TARBALL) ($$(du -h $(DIST_TARBALL) | cut -f1))"

$(VENV)/.dist-tools-installed: $(VENV)/.tools-installed
	$(VPY) -m pip install --quiet $(PY_DIST_TOOLS)
	touch $@

# One abi3 wheel for CPython 3.11+ on any glibc >= 2.17 x86_64 system, and the sdist
# (which carries the workspace crates it needs and LICENSE). The wheel is built without
# pyo3's reference pool, as every workspace build is (.cargo/config.toml); a wheel
# built by pip from the sdist, which does not carry that file, keeps the pool (same
# behaviour, slower calls).
# auditwheel must agree that the wheel is manylinux_2_17 and links no library it does
# not allow.
dist-python: $(VENV)/.dist-tools-installed
	mkdir -p $(DIST) && rm -f $(DIST_WHEEL) $(DIST_SDIST)
	cd $(PYDIR) && PATH="$(VENV)/bin:$$PATH" CARGO_TARGET_DIR=$(ZIG_TARGET) \
	  SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) maturin build --release \
	  --locked --zig --compatibility manylinux_2_17 --out $(DIST)
	cd $(PYDIR) && PATH="$(VENV)/bin:$$PATH" SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) maturin sdist --out $(DIST)
	test -f $(DIST_WHEEL) && test -f $(DIST_SDIST)
	$(VENV)/bin/auditwheel show $(DIST_WHEEL) | tee $(ZIG_TARGET)/auditwheel.txt
	tr -s ' \n' ' ' < $(ZIG_TARGET)/auditwheel.txt | grep -q 'consistent with the following platform tag: "manylinux_2_17_x86_64"' 

# The .deb: man pages and completions from `state generate`, a Debian changelog entry
# for this version, then cargo-deb (which strips the binary) and lintian.
dist-deb: cli-build dist-packages
	@command -v cargo-deb >/dev/null || { echo "installing cargo-deb $(CARGO_DEB_VERSION) (one-time compile)"; \
	  nice -n 10 $(CARGO) install --locked --quiet cargo-deb --version $(CARGO_DEB_VERSION); }
	rm -rf $(DEB_GEN) && mkdir -p $(DIST)
	$(CLI_BIN) generate $(DEB_GEN) >/dev/null
	gzip -9n $(DEB_GEN)/man1/*.1
	gzip -9n -c CHANGELOG.md > $(DEB_GEN)/changelog.gz
	printf '%s\n' "$(DEB_NAME) ($(STATE_LIB_VERSION)-1) unstable; urgency=medium" "" \
	  "  * Upstream release $(STATE_LIB_VERSION): see /usr/share/doc/$(DEB_NAME)/changelog.gz." "" \
	  " -- The libstate authors <maintainers@libstate.invalid>  $$(date -u -R -d @$(SOURCE_DATE_EPOCH))" \
	  > $(DEB_GEN)/changelog
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(CARGO) deb -p state-cli --no-build --deb-revision 1 --output $(DIST_DEB)
	lintian --fail-on error $(DIST_DEB)

# The RustSec database is a git repository on github.com, which cargo-deny fetches into
# ~/.cargo/advisory-dbs. Where github.com cannot be reached, cargo-deny goes on with the
# copy it has, so the check prints that copy's date: an old date means a stale check.
ADVISORY_DBS ?= $(or $(CARGO_HOME),$(HOME)/.cargo)/advisory-dbs
deny:
	@command -v cargo-deny >/dev/null || { echo "installing cargo-deny (one-time compile)"; \
	  nice -n 10 $(CARGO) install --locked --quiet cargo-deny; }
	$(CARGO) deny check
	@for db in $(ADVISORY_DBS)/advisory-db-*/; do \
	  echo "deny: RustSec advisory database as of $$(git -C "$$db" log -1 --format=%cs)"; done

# --- make install / uninstall, with every directory variable ------------------------
# Into a DESTDIR with Debian-style LIBDIR and other non-default directories: the .pc
# and CMake files must name the real directories (not DESTDIR, not a hard-coded lib/),
# a program must build against them, install must refuse (and build nothing) when the
# artefacts are missing, and uninstall must leave no file behind.
install-test: c-lib cli-build dist-packages
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	vars='PREFIX=/opt/ls LIBDIR=/opt/ls/lib/x86_64-linux-gnu INCLUDEDIR=/opt/ls/include/libstate BINDIR=/opt/ls/sbin'; \
	$(MAKE) --no-print-directory install DESTDIR="$$tmp/root" $$vars >/dev/null; \
	r="$$tmp/root/opt/ls"; \
	test -L "$$r/lib/x86_64-linux-gnu/$(STATE_SONAME)" && test -f "$$r/lib/x86_64-linux-gnu/libstate.a"; \
	test -f "$$r/include/libstate/state.h" && test -x "$$r/sbin/state" && test -s "$$r/share/man/man1/state.1"; \
	grep -qx 'libdir=$${prefix}/lib/x86_64-linux-gnu' "$$r/lib/x86_64-linux-gnu/pkgconfig/state.pc"; \
	! grep -rq "$$tmp" "$$r/lib/x86_64-linux-gnu/pkgconfig" "$$r/lib/x86_64-linux-gnu/cmake"; \
	export PKG_CONFIG_SYSROOT_DIR="$$tmp/root" PKG_CONFIG_LIBDIR="$$r/lib/x86_64-linux-gnu/pkgconfig"; \
	$(CC) $(C_WARN) tests/install_check.c -o "$$tmp/app" $$(pkg-config --cflags --libs state); \
	LD_LIBRARY_PATH="$$r/lib/x86_64-linux-gnu" "$$tmp/app" "$$tmp/data"; \
	if $(MAKE) --no-print-directory install DESTDIR="$$tmp/none" C_LIB="$$tmp/missing" >"$$tmp/out" 2>&1; then \
	  echo "install-test: make install succeeded without the library"; exit 1; fi; \
	grep -q "libstate.so.$(STATE_LIB_VERSION) is missing. Build first" "$$tmp/out"; \
	test ! -e "$$tmp/none/usr/local/lib"; \
	$(MAKE) --no-print-directory uninstall DESTDIR="$$tmp/root" $$vars >/dev/null; \
	left=$$(find "$$tmp/root" -type f -o -type l); \
	if [ -n "$$left" ]; then echo "install-test: uninstall left: $$left"; exit 1; fi; \
	echo "install-test: install with DESTDIR/PREFIX/LIBDIR/INCLUDEDIR/BINDIR, build against it, refusal without artefacts, uninstall: ok"

# --- make dist-test: the artefacts as users meet them -------------------------------
dist-test: dist-test-c dist-test-cmake dist-test-python dist-test-deb

DIST_TEST := $(CURDIR)/target/dist-test

# Unpacked anywhere: a C program built with pkg-config (--define-prefix: the .pc is
# found in the unpacked tree), shared and static, and the state tool from the tarball.
dist-test-c: dist-c
	rm -rf $(DIST_TEST)/c && mkdir -p $(DIST_TEST)/c
	tar -C $(DIST_TEST)/c -xzf $(DIST_TARBALL)
	@set -e; u=$(DIST_TEST)/c/$(DIST_NAME); \
	for f in LICENSE include/state.h lib/libstate.so.$(STATE_LIB_VERSION) lib/libstate.a \
	  lib/pkgconfig/state.pc lib/cmake/libstate/libstateConfig.cmake \
	  lib/cmake/libstate/libstateConfigVersion.cmake bin/state share/man/man1/state.1; do \
	  test -s "$$u/$$f" || { echo "dist-test-c: $$f missing from the tarball"; exit 1; }; done; \
	test "$$(readlink $$u/lib/$(STATE_SONAME))" = libstate.so.$(STATE_LIB_VERSION); \
	test "$$(readlink $$u/lib/libstate.so)" = $(STATE_SONAME); \
	readelf -d $$u/lib/libstate.so.$(STATE_LIB_VERSION) | grep -q 'SONAME.*\[$(STATE_SONAME)\]'; \
	! readelf -S $$u/lib/libstate.so.$(STATE_LIB_VERSION) | grep -q '\.debug_info'; \
	export PKG_CONFIG_PATH=$$u/lib/pkgconfig; \
	test "$$(pkg-config --define-prefix --variable=prefix state)" = "$$u"; \
	$(CC) $(C_WARN) tests/install_check.c -o $(DIST_TEST)/c/app $$(pkg-config --define-prefix --cflags --libs state); \
	LD_LIBRARY_PATH=$$u/lib $(DIST_TEST)/c/app $(DIST_TEST)/c/data; \
	$(CC) $(C_WARN) tests/install_check.c -o $(DIST_TEST)/c/app-static $$(pkg-config --define-prefix --cflags state) \
	  $$u/lib/libstate.a $$(pkg-config --define-prefix --static --libs-only-l state | sed 's/-lstate //'); \
	$(DIST_TEST)/c/app-static $(DIST_TEST)/c/data2; \
	$$u/bin/state --store $(DIST_TEST)/c/cli set b k v && test "$$($$u/bin/state --store $(DIST_TEST)/c/cli get b k)" = v; \
	echo "dist-test-c: the tarball's pkg-config file, library (shared, static) and state tool work"

# A C++ program through CMake's find_package(libstate) on the unpacked tarball, both
# imported targets; and a version it cannot satisfy is refused.
dist-test-cmake: dist-test-c
	@set -e; u=$(DIST_TEST)/c/$(DIST_NAME); b=$(DIST_TEST)/cmake; rm -rf $$b; \
	cmake -S tests/dist -B $$b -DCMAKE_PREFIX_PATH=$$u -DCMAKE_BUILD_TYPE=Release >$(DIST_TEST)/cmake.log; \
	cmake --build $$b >>$(DIST_TEST)/cmake.log; \
	$$b/cmake_check $$b/data; $$b/cmake_check_static $$b/data2; \
	mkdir -p $$b/v && printf 'cmake_minimum_required(VERSION 3.16)\nproject(v LANGUAGES C)\nfind_package(libstate 0.99 REQUIRED)\n' > $$b/v/CMakeLists.txt; \
	if cmake -S $$b/v -B $$b/v/build -DCMAKE_PREFIX_PATH=$$u >$$b/v.log 2>&1; then \
	  echo "dist-test-cmake: find_package(libstate 0.99) accepted $(STATE_LIB_VERSION)"; exit 1; fi; \
	grep -q 'version: $(STATE_LIB_VERSION)' $$b/v.log; \
	echo "dist-test-cmake: find_package(libstate) with libstate::state and libstate::state_static: ok"

# The wheel in a fresh venv whose PATH has no cargo (so nothing can be compiled), then
# the Python test suite against it; the sdist carries what building it needs.
dist-test-python: dist-python redis-packages
	rm -rf $(DIST_TEST)/py && mkdir -p $(DIST_TEST)/py
	$(PYTHON) -m venv $(DIST_TEST)/py/venv
	@set -e; nocargo=$$(echo "$$PATH" | tr ':' '\n' | grep -v -e '\.cargo' -e '\.rustup' | paste -sd:); \
	export PATH="$(DIST_TEST)/py/venv/bin:$$nocargo"; \
	! command -v cargo >/dev/null && ! command -v rustc >/dev/null; \
	python -m pip install --quiet --no-index --find-links $(DIST) --only-binary :all: libstate==$(STATE_LIB_VERSION); \
	python -m pip install --quiet "pytest>=8" "hypothesis>=6.100"; \
	python -c 'import libstate, sys; assert libstate.__version__ == "$(STATE_LIB_VERSION)", libstate.__version__; print("dist-test-python: libstate", libstate.__version__, "from", libstate.__file__)'; \
	python -c 'import importlib.metadata as m; assert any(str(f).endswith("licenses/LICENSE") for f in m.files("libstate")), "no LICENSE in the wheel"'; \
	cp -r $(PYDIR)/tests $(DIST_TEST)/py/tests; \
	cd $(DIST_TEST)/py && python -m pytest -q -p no:cacheprovider tests
	@tar -tzf $(DIST_SDIST) > $(DIST_TEST)/py/sdist.txt; \
	for f in LICENSE pyproject.toml python/libstate/__init__.py core/Cargo.toml core/src/lib.rs service/Cargo.toml service/src/lib.rs Cargo.lock; do \
	  grep -q "^libstate-$(STATE_LIB_VERSION)/\(.*/\)\?$$f$$" $(DIST_TEST)/py/sdist.txt || { echo "dist-test-python: $$f missing from the sdist"; exit 1; }; \
	done; echo "dist-test-python: the sdist holds the package, the core's and the service's sources, Cargo.lock and LICENSE"

# What the .deb installs and declares, read with dpkg-deb (installing it would need a
# running systemd): the files, the unit's hardening, the maintainer scripts.
dist-test-deb: dist-deb
	@set -e; d=$(DIST_TEST)/deb; rm -rf $$d && mkdir -p $$d; \
	dpkg-deb --info $(DIST_DEB) > $$d/info; dpkg-deb --contents $(DIST_DEB) > $$d/contents; \
	grep -q '^ Package: $(DEB_NAME)$$' $$d/info; grep -q '^ Version: $(STATE_LIB_VERSION)-1$$' $$d/info; \
	grep -q '^ Architecture: amd64$$' $$d/info; grep -q '^ Depends:.*adduser' $$d/info; \
	for f in ./usr/bin/state ./usr/share/man/man1/state.1.gz ./usr/share/man/man1/state-serve.1.gz \
	  ./usr/share/bash-completion/completions/state ./usr/share/zsh/vendor-completions/_state \
	  ./usr/share/fish/vendor_completions.d/state.fish ./usr/share/doc/$(DEB_NAME)/copyright \
	  ./usr/share/doc/$(DEB_NAME)/changelog.Debian.gz ./usr/share/doc/$(DEB_NAME)/changelog.gz \
	  ./usr/lib/systemd/system/libstate.service; do \
	  awk '{print $$6}' $$d/contents | grep -qx "$$f" || { echo "dist-test-deb: $$f missing"; cat $$d/contents; exit 1; }; \
	done; \
	dpkg-deb -x $(DIST_DEB) $$d/root; dpkg-deb -e $(DIST_DEB) $$d/DEBIAN; \
	u=$$d/root/usr/lib/systemd/system/libstate.service; \
	for line in User=libstate NoNewPrivileges=yes ProtectSystem=strict StateDirectory=libstate \
	  'ExecStart=/usr/bin/state --store /var/lib/libstate serve'; do \
	  grep -qx "$$line" $$u || { echo "dist-test-deb: the unit lacks $$line"; exit 1; }; done; \
	sed "s|ExecStart=/usr/bin/state|ExecStart=$$d/root/usr/bin/state|" $$u > $$d/libstate.service; \
	systemd-analyze verify --man=no $$d/libstate.service > $$d/verify.txt 2>&1 || { cat $$d/verify.txt; exit 1; }; \
	if [ -s $$d/verify.txt ]; then echo "dist-test-deb: systemd-analyze verify:"; cat $$d/verify.txt; exit 1; fi; \
	systemd-analyze security --offline=true --threshold=20 $$u > $$d/security.txt 2>&1 || { tail -3 $$d/security.txt; \
	  echo "dist-test-deb: the unit's exposure is above 2.0"; exit 1; }; \
	grep -o 'Overall exposure level for libstate.service: [0-9.]*' $$d/security.txt; \
	grep -q 'adduser --system' $$d/DEBIAN/postinst; \
	! readelf -S $$d/root/usr/bin/state | grep -q '\.debug_info'; \
	$$d/root/usr/bin/state --version | grep -qx 'state $(STATE_LIB_VERSION)'; \
	echo "dist-test-deb: contents, control fields, hardened unit and maintainer scripts: ok"
