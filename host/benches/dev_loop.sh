#!/usr/bin/env bash
# The handler developer's loop in `--dev`, timed (figures for BENCHMARKS.md,
# not a test):
#
#   host/benches/dev_loop.sh            # 10 edit rounds
#   ROUNDS=20 host/benches/dev_loop.sh
#
# Starts the release host with DEV=true on the embedded broker (handlers
# folder: a temp dir), then
#   1. `event-host new` creates a crate under handlers/: the time until
#      GET /handlers/NAME says running;
#   2. ROUNDS times, rewrites the crate's log text: the time from the write
#      until GET /handlers/NAME shows a new version.
# The crate is removed at the end (and Cargo.lock restored). Run it from a
# checkout with nothing else building: it measures cargo's rebuild too.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-10}
PORT=${PORT:-3917}
NAME=dev-loop-probe-$$
WORK=$(mktemp -d)
HOST_PID=
cleanup() {
    [ -n "$HOST_PID" ] && kill "$HOST_PID" 2>/dev/null && wait "$HOST_PID" 2>/dev/null || true
    rm -rf "handlers/$NAME" "$WORK"
    git checkout -q -- Cargo.lock 2>/dev/null || true
}
trap cleanup EXIT

cargo build --release -q -p event-host
BIN=${CARGO_TARGET_DIR:-target}/release/event-host
ms() { date +%s%3N; }
version() { curl -s "http://127.0.0.1:$PORT/handlers/$NAME" | python3 -c 'import json,sys; h=json.load(sys.stdin); print(h.get("status"), h.get("version"))' 2>/dev/null || echo "none none"; }

PORT=$PORT DEV=true HANDLERS_DIR="$WORK/handlers" WORKSPACE_DIR=. RUST_LOG=info \
    "$BIN" >"$WORK/host.log" 2>&1 &
HOST_PID=$!
until curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; do sleep 0.1; done
# The first build after start-up builds the demo crates; let it finish.
sleep 1
while pgrep -f "target-dir .*handlers" >/dev/null; do sleep 0.2; done

start=$(ms)
"$BIN" new "$NAME" >/dev/null
until [ "$(version | cut -d' ' -f1)" = running ]; do sleep 0.01; done
echo "new -> running: $(( $(ms) - start )) ms"

times=()
for round in $(seq 1 "$ROUNDS"); do
    before=$(version | cut -d' ' -f2)
    sed -i "s/$NAME: {} (user {user})\|$NAME round [0-9]*: {} (user {user})/$NAME round $round: {} (user {user})/" \
        "handlers/$NAME/src/lib.rs"
    start=$(ms)
    until now=$(version | cut -d' ' -f2) && [ "$now" != "$before" ] && [ "$now" != none ]; do sleep 0.01; done
    t=$(( $(ms) - start ))
    times+=("$t")
    echo "edit $round -> new version serving: $t ms"
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n | tr '\n' ' ')
echo "edit -> serving, $ROUNDS rounds (ms, sorted): $sorted"
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print "median: " m " ms"}'
