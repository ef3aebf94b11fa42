#!/usr/bin/env bash
# Runs a command against a fresh `state serve`, then stops the server.
#   scripts/with-server.sh STATE_BIN COMMAND...
# The server gets a temporary memfile store with clients alice and bob, free
# loopback ports and a Unix socket; the command sees STATE_RESP_PORT,
# STATE_HTTP_PORT, STATE_SOCK, STATE_TOKEN_ALICE and STATE_TOKEN_BOB. Extra
# `state serve` flags can be given in STATE_SERVE_FLAGS.
set -euo pipefail
bin=$1; shift
tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"; wait "$pid" || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
store=$tmp/store
export STATE_TOKEN_ALICE=$("$bin" --store "$store" client add alice)
export STATE_TOKEN_BOB=$("$bin" --store "$store" client add bob)
mkfifo "$tmp/out"
# shellcheck disable=SC2086
"$bin" --store "$store" --engine memfile serve --resp 127.0.0.1:0 --http 127.0.0.1:0 \
  --unix "$tmp/state.sock" ${STATE_SERVE_FLAGS:-} >"$tmp/out" 2>"$tmp/log" &
pid=$!
# The server prints where it listens, ending with a "ready" line.
while IFS= read -r line; do
  case $line in
    *"redis protocol on 127.0.0.1:"*) STATE_RESP_PORT=${line##*127.0.0.1:}; STATE_RESP_PORT=${STATE_RESP_PORT%% *} ;;
    *"HTTP on http://127.0.0.1:"*) STATE_HTTP_PORT=${line##*127.0.0.1:}; STATE_HTTP_PORT=${STATE_HTTP_PORT%%/*} ;;
    "state serve: ready"*) break ;;
  esac
done <"$tmp/out"
if [ -z "${STATE_HTTP_PORT:-}" ]; then
  echo "with-server: state serve did not start:" >&2; cat "$tmp/log" >&2; exit 1
fi
cat "$tmp/out" >/dev/null &
export STATE_RESP_PORT STATE_HTTP_PORT STATE_SOCK=$tmp/state.sock
"$@"
