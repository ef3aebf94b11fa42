#!/usr/bin/env bash
# Runs Redis 7.0.15's own test units (vendored in tests/redis-suite/tests, see
# README.md) in external mode against a fresh `state serve --dev-no-auth` on
# loopback, and checks the outcome against two committed lists:
#   skip.txt            tests that cannot apply to libstate (another data type,
#                       DEBUG, replication, server-wide CONFIG); never run.
#   known-failures.txt  tests that should pass but do not yet; each is expected to
#                       fail, and one that passes fails the run until it is taken
#                       off the list (so the list only shrinks).
# Any other failure fails the run.
#
#   tests/redis-suite/run.sh STATE_BIN            against state serve
#   tests/redis-suite/run.sh --redis-server PORT  against a running redis-server
#                                                 (a reference count; lists unused)
# Needs tclsh 8.5+ (Debian package tcl). Prints the counts per unit; the whole
# harness output is kept in $REDIS_SUITE_LOG if that is set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
units=(unit/type/string unit/type/incr unit/expire unit/keyspace unit/scan unit/multi
  unit/protocol unit/pubsub)

tclsh=$(command -v tclsh8.6 || command -v tclsh || true)
if [ -z "$tclsh" ]; then
  echo "redis-suite: tclsh is missing: install Debian package tcl (sudo apt-get install tcl)" >&2
  exit 1
fi

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"; wait "$pid" || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# The list files: '#' starts a comment (the reason for the lines below it).
names() { sed -e 's/^[[:space:]]*#.*//' -e '/^[[:space:]]*$/d' "$1"; }

if [ "${1:-}" = "--redis-server" ]; then
  port=$2
  skipargs=()
  against="redis-server on port $port"
else
  bin=$1
  store=$tmp/store
  mkfifo "$tmp/out"
  "$bin" --store "$store" --engine memfile serve --create --dev-no-auth --resp 127.0.0.1:0 \
    --http off --unix off >"$tmp/out" 2>"$tmp/log" &
  pid=$!
  port=
  while IFS= read -r line; do
    case $line in
      *"redis protocol on 127.0.0.1:"*) port=${line##*127.0.0.1:}; port=${port%% *} ;;
      "state serve: ready"*) break ;;
    esac
  done <"$tmp/out"
  if [ -z "$port" ]; then
    echo "redis-suite: state serve did not start:" >&2; cat "$tmp/log" >&2; exit 1
  fi
  cat "$tmp/out" >/dev/null &
  # A known failure marked '!' would wait for ever (for a message that never
  # comes): it is not run, and counted as failing.
  { names "$here/skip.txt"; names "$here/known-failures.txt" | sed -n 's/^!//p'; } >"$tmp/skip"
  # Tests the suite itself marks as needing DEBUG, replication or maxmemory.
  skipargs=(--skipfile "$tmp/skip" --tags -needs:debug --tags -needs:repl
    --tags -needs:config-maxmemory)
  against="state serve on port $port"
fi

single=()
for u in "${units[@]}"; do single+=(--single "$u"); done
echo "redis-suite: Redis 7.0.15 units ${units[*]} against $against"
# --durable: a test that raises an error (an unknown command) is a failure, and
# the run goes on. --singledb: libstate has one database per client (no SELECT 9).
# The harness reads its files relative to the suite's directory.
set +e
(cd "$here" && "$tclsh" tests/test_helper.tcl --host 127.0.0.1 --port "$port" --singledb \
  --durable --timeout 300 "${skipargs[@]}" "${single[@]}") 2>&1 |
  sed -u 's/\x1b\[[0-9;]*m//g' | tee "$tmp/log.txt" | grep -E '^\[(err|exception)\]|^Testing|^\[.*TIMEOUT' 
set -e
[ -n "${REDIS_SUITE_LOG:-}" ] && cp "$tmp/log.txt" "$REDIS_SUITE_LOG"

# Tally per unit: "Testing unit/x" starts a unit's lines.
awk '
  /^Testing unit\// { u = $2; order[++n] = u }
  /^\[ok\]:/ { ok[u]++ } /^\[err\]:/ { err[u]++ } /^\[skip\]:/ { sk[u]++ } /^\[ignore\]:/ { ig[u]++ }
  END {
    printf "%-20s %6s %6s %8s %8s\n", "unit", "pass", "fail", "skipped", "ignored"
    for (i = 1; i <= n; i++) { u = order[i]; tp += ok[u]; tf += err[u]; ts += sk[u]; ti += ig[u]
      printf "%-20s %6d %6d %8d %8d\n", u, ok[u], err[u], sk[u], ig[u] }
    printf "%-20s %6d %6d %8d %8d\n", "total", tp, tf, ts, ti
  }' "$tmp/log.txt"
echo "(skipped: skip.txt; ignored: tagged needs:debug/repl/config-maxmemory, external:skip, singledb:skip)"

if grep -q '^\[exception\]\|TIMEOUT' "$tmp/log.txt"; then
  echo "redis-suite: the harness stopped early (exception or timeout above)" >&2
  exit 1
fi
if ! grep -q 'All tests passed\|\[ok\]' "$tmp/log.txt"; then
  echo "redis-suite: no test ran" >&2
  exit 1
fi
[ -n "$pid" ] || exit 0

# "[err]: NAME in tests/unit/x.tcl" -> NAME
sed -n 's/^\[err\]: \(.*\) in tests\/unit\/.*\.tcl$/\1/p' "$tmp/log.txt" | sort -u >"$tmp/failed"
names "$here/known-failures.txt" | { grep -v '^!' || true; } | sort -u >"$tmp/known"
hangs=$(names "$here/known-failures.txt" | sed -n 's/^!//p')
new=$(comm -23 "$tmp/failed" "$tmp/known")
fixed=$(comm -13 "$tmp/failed" "$tmp/known" | while IFS= read -r t; do
  grep -qxF "[ok]: $t" <(sed 's/ ([0-9]* ms)$//' "$tmp/log.txt") && echo "$t"; done || true)
status=0
if [ -n "$new" ]; then
  echo "redis-suite: these tests failed (not in known-failures.txt):" >&2
  echo "$new" | sed 's/^/  /' >&2
  status=1
fi
if [ -n "$fixed" ]; then
  echo "redis-suite: these tests now pass: take them off known-failures.txt:" >&2
  echo "$fixed" | sed 's/^/  /' >&2
  status=1
fi
if [ -n "$hangs" ]; then
  echo "redis-suite: not run, known to wait for ever (known-failures.txt, marked '!'):"
  echo "$hangs" | sed 's/^/  /'
fi
[ $status -eq 0 ] && echo "redis-suite: every test ran as expected ($(wc -l <"$tmp/known") known failures ran and failed, $(echo -n "$hangs" | grep -c '^') not run)"
exit $status
