#!/usr/bin/env bash
# Times `state load` and `state dump` of 100K records (docs/bench-cli.md).
# Usage: cli/bench/load.sh PATH/TO/state   (make bench-cli builds it and runs this)
set -euo pipefail

STATE=${1:?usage: load.sh PATH/TO/state}
N=${BENCH_RECORDS:-100000}
RUNS=${BENCH_RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# N records over 10 buckets, 16-byte keys, 96-byte values (128 base64 digits).
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++)
    printf "{\"bucket\":\"bucket%d\",\"key\":\"key/%012d\",\"value\":\"%0128d\"}\n", i % 10, i, i }' \
    > "$work/data.jsonl"
"$STATE" --store "$work/seed" load "$work/data.jsonl" >/dev/null
"$STATE" --store "$work/seed" dump -o "$work/data.json" >/dev/null
echo "records: $N in 10 buckets, 16-byte keys, 96-byte values"
echo "files: data.jsonl $(stat -c %s "$work/data.jsonl") bytes, data.json $(stat -c %s "$work/data.json") bytes"
echo "state: $("$STATE" --version)"
echo

TIMEFORMAT='%R'
timed() { # label, command...: prints the label and the wall time of each run
    local label=$1; shift
    local times=()
    for _ in $(seq "$RUNS"); do
        rm -rf "$work/store"
        if [[ $label != load* ]]; then "$STATE" --store "$work/store" --engine "$engine" load "$work/data.jsonl" >/dev/null; fi
        t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
        times+=("$t")
    done
    printf '%-8s %-32s %s s\n' "$engine" "$label" "${times[*]}"
}

for engine in sled memfile; do
    timed "load json (original format)" "$STATE" --store "$work/store" --engine "$engine" load "$work/data.json"
    timed "load jsonl" "$STATE" --store "$work/store" --engine "$engine" load "$work/data.jsonl"
    timed "dump json" "$STATE" --store "$work/store" dump -o "$work/out.json"
    timed "dump jsonl" "$STATE" --store "$work/store" dump --format jsonl -o "$work/out.jsonl"
    timed "check" "$STATE" --store "$work/store" check
    timed "compact" "$STATE" --store "$work/store" compact
done
