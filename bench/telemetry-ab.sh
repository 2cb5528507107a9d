#!/usr/bin/env bash
# What metrics and unsampled tracing cost the host per event (the
# observability issue's target: at most 5 %), measured without anything
# else changing: the consume drain of the commit checked out against the
# same commit with both taken out (bench/telemetry-off.patch: the
# per-event metric updates, the trace context and the log span), on tansu.
#
#   bench/telemetry-ab.sh
#   ROUNDS=12 EVENTS=200000 PARTITIONS=3 bench/telemetry-ab.sh
#
# Each round drains EVENTS pre-filled events through the no-op handler
# once with each build, every drain a fresh host process; the call history
# is off on both sides (CALL_HISTORY is its own cost, measured by the
# consume bench's `CONSUME_TELEMETRY=nohistory,unsampled`). It prints the
# consume bench's table, then the host's CPU per event of each side per
# round and the ratios (telemetry on ÷ off). The build with telemetry taken
# out goes to $CARGO_TARGET_DIR-telemetry-off (a cold build the first time).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-9}
EVENTS=${EVENTS:-200000}
PARTITIONS=${PARTITIONS:-3}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OFF_TARGET=${OFF_TARGET_DIR:-$TARGET-telemetry-off}
export PATH="$HOME/.cargo/bin:$PATH"
command -v tansu > /dev/null || { echo "needs tansu: cargo install tansu --locked --features dynostore,libsql" >&2; exit 1; }

WORK=$(mktemp -d /tmp/event-host-telemetry-ab.XXXXXX)
TREE=$WORK/tree
cleanup() {
    git -C "$ROOT" worktree remove --force "$TREE" 2> /dev/null || true
}
trap cleanup EXIT

echo "==> building the consume bench with telemetry taken out ($OFF_TARGET)" >&2
git -C "$ROOT" worktree add --quiet --detach "$TREE" HEAD
git -C "$TREE" apply "$ROOT/bench/telemetry-off.patch"
exe=$(cd "$TREE" && CARGO_TARGET_DIR=$OFF_TARGET cargo bench -p event-host-bench \
    --bench consume --no-run --message-format=json |
    grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | grep '/consume-' | tail -1)
[[ -x $exe ]] || { echo "no consume bench executable built" >&2; exit 1; }
cp "$exe" "$WORK/consume-telemetry-off"

echo "==> $ROUNDS rounds of $EVENTS events, $PARTITIONS partitions" >&2
(cd "$ROOT" && env -u RUST_BACKTRACE \
    CONSUME_BASELINE_EXE="$WORK/consume-telemetry-off" CONSUME_CALL_HISTORY=0 \
    CONSUME_BROKERS=tansu CONSUME_SIDES=host CONSUME_IDLE=0 \
    CONSUME_PARTITIONS="$PARTITIONS" CONSUME_EVENTS="$EVENTS" CONSUME_ROUNDS="$ROUNDS" \
    CONSUME_TELEMETRY=baseline,nohistory \
    cargo bench -p event-host-bench --bench consume) | tee "$WORK/report.md"

# The host's CPU per event is the table's ninth column and its user part
# the tenth; the baseline side is the build with telemetry taken out. The
# telemetry's own work is user-space work: its cost is the difference in
# user CPU, against the whole CPU per event of the build without it.
awk -F'|' '
    /^\| Tansu/ && /baseline build/ { n++; off[n] = $10 + 0; offu[n] = $11 + 0 }
    /^\| Tansu/ && /no call history/ { m++; on[m] = $10 + 0; onu[m] = $11 + 0 }
    END {
        print "\n| round | off: CPU µs/event (user) | on: CPU µs/event (user) | on ÷ off | user difference ÷ off CPU |"
        print "| ---: | ---: | ---: | ---: | ---: |"
        k = (n < m ? n : m)
        for (i = 1; i <= k; i++) {
            r = on[i] / off[i]; u = (onu[i] - offu[i]) / off[i]
            printf "| %d | %.1f (%.1f) | %.1f (%.1f) | %.3f | %+.1f %% |\n", i, off[i], offu[i], on[i], onu[i], r, u * 100
            sum += r; usum += u
        }
        if (k > 0) printf "\nmeans over %d rounds: on ÷ off %.3f; user difference %+.1f %% of the CPU per event\n", k, sum / k, usum / k * 100
    }' "$WORK/report.md"
echo "report: $WORK/report.md" >&2
