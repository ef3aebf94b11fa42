# `state serve` (server/, crate state-server): examples, tests and benchmarks that
# run real clients against a real server, side by side with a real redis-server.
#
#   make                  runs the service examples (redis-py, hiredis, the Rust,
#                         Python and C clients' typed records, curl) against
#                         a server it starts and stops (server-example)
#   make test             server-test: the redis-py/redis-cli/redis-benchmark suite
#                         (server/tests/py), the web page in headless Chromium, and
#                         Redis 7.0.15's own test units (redis-suite)
#   make bench-service    redis-benchmark against state serve and redis-server 7 in
#                         one run; writes docs/bench-service.md (opt-in)
#
# Debian packages are installed when missing (as root), see scripts/ensure-packages.sh.

SERVER_PKGS := redis-server redis-tools libhiredis-dev
WEB_PKGS := chromium
WITH_SERVER := scripts/with-server.sh $(CLI_BIN)
WEB_TEST_DIR := examples/web/test

ALL_TARGETS += server-example
TEST_TARGETS += server-test web-test unit-check

.PHONY: server-packages server-example server-test web-test bench-service unit-check

server-packages:
	scripts/ensure-packages.sh $(SERVER_PKGS)

server-example: cli-build c-lib python-install server-packages
	$(VPY) -m pip install --quiet "redis>=5"
	mkdir -p $(C_BIN)
	$(CC) $(C_WARN) -O1 examples/c/service_client.c -o $(C_BIN)/service_client -lhiredis
	$(CC) $(C_FLAGS) examples/c/remote_record.c -o $(C_BIN)/remote_record $(C_LINK)
	$(RELEASE_BUILD) --example typed_record
	$(WITH_SERVER) bash -c '\
	  $(VPY) examples/python/service_client.py $$STATE_RESP_PORT alice $$STATE_TOKEN_ALICE && \
	  $(C_BIN)/service_client $$STATE_SOCK && \
	  target/release/examples/typed_record state+unix://$$STATE_SOCK && \
	  $(VPY) examples/python/remote_record.py state+unix://$$STATE_SOCK && \
	  $(C_BIN)/remote_record state+unix://$$STATE_SOCK && \
	  curl -sf -H "Authorization: Bearer $$STATE_TOKEN_ALICE" -d "{\"key\":\"layout\"}" \
	    http://127.0.0.1:$$STATE_HTTP_PORT/v1/get && echo " <- curl POST /v1/get (alice)"'

# redis>=5.1: test_tracking.py runs redis-py's own client-side cache (cache_config=).
server-test: cli-build python-venv server-packages
	$(VPY) -m pip install --quiet "redis>=5.1" "httpx>=0.27"
	cd server/tests/py && STATE_BIN=$(CLI_BIN) $(VPY) -m pytest -q -p no:cacheprovider .

# The shipped systemd unit (cli/debian/libstate.service): systemd-analyze verify on it,
# pointed at the binary just built, and the lines issue 26 asks of it (readiness,
# reload by SIGHUP, its own user, the hardening). Needs no running systemd.
UNIT_CHECK := target/unit-check
unit-check: cli-build
	scripts/ensure-packages.sh systemd
	@set -e; mkdir -p $(UNIT_CHECK); u=cli/debian/libstate.service; \
	for line in Type=notify NotifyAccess=main 'ExecReload=/bin/kill -HUP $$MAINPID' User=libstate \
	  NoNewPrivileges=yes ProtectSystem=strict StateDirectory=libstate; do \
	  grep -qxF "$$line" $$u || { echo "unit-check: $$u lacks $$line"; exit 1; }; done; \
	sed "s|ExecStart=/usr/bin/state|ExecStart=$(CLI_BIN)|" $$u > $(UNIT_CHECK)/libstate.service; \
	systemd-analyze verify --man=no $(UNIT_CHECK)/libstate.service > $(UNIT_CHECK)/verify.txt 2>&1 \
	  || { cat $(UNIT_CHECK)/verify.txt; exit 1; }; \
	if [ -s $(UNIT_CHECK)/verify.txt ]; then cat $(UNIT_CHECK)/verify.txt; exit 1; fi; \
	echo "unit-check: systemd-analyze verify passes on $$u"

$(WEB_TEST_DIR)/node_modules/.installed: $(WEB_TEST_DIR)/package.json
	cd $(WEB_TEST_DIR) && npm install --silent --no-audit --no-fund
	touch $@

web-test: cli-build $(WEB_TEST_DIR)/node_modules/.installed
	scripts/ensure-packages.sh $(WEB_PKGS)
	STATE_SERVE_FLAGS="--web $(CURDIR)/examples/web" $(WITH_SERVER) bash -c '\
	  node --test-reporter=spec $(WEB_TEST_DIR)/web.test.mjs http://127.0.0.1:$$STATE_HTTP_PORT $$STATE_TOKEN_ALICE $$STATE_TOKEN_BOB'

bench-service: cli-build server-packages
	scripts/ensure-packages.sh wrk
	python3 server/bench/bench.py $(CLI_BIN)

# Redis 7.0.15's own test units (vendored in tests/redis-suite) in external mode
# against `state serve --dev-no-auth`; see tests/redis-suite/README.md.
TEST_TARGETS += redis-suite
.PHONY: redis-suite
redis-suite: cli-build
	scripts/ensure-packages.sh tcl
	tests/redis-suite/run.sh $(CLI_BIN)
