#!/usr/bin/env bash
# event-host against the original Node.js demo under the same open-loop load
# (performance issue, item 3: "the demo chain under load"). One command:
#
#   bench/compare.sh
#   RATES=250,500,1000 DURATION=20s bench/compare.sh
#   MODE=capacity bench/compare.sh
#
# For each server and each rate: a fresh tansu broker (memory engine), a
# fresh server, then the load generator (bench/src/loadgen/) at that rate
# (POST /users at a fixed rate, latency from the scheduled send time; the
# welcome notifications are read from notification-events to time the
# registration -> welcome chain). Fresh, because tansu 0.6's memory engine
# lists every stored batch of a partition on each fetch that returns data:
# on a broker that already holds the earlier rates' events every fetch is
# slower, and a step would measure its predecessors. The tables at the end
# merge the rates of each server.
#
# The demo connects to localhost:9092 (hard-coded), so its broker takes port
# 9092, which must be free.
#
# KAFKA_BROKERS=host:port runs every step on that cluster instead of fresh
# tansu brokers: the way to judge the latency targets on Apache Kafka, e.g.
#
#   docker compose up -d kafka
#   KAFKA_BROKERS=localhost:9092 bench/compare.sh
#
# Both servers then share the cluster and its topics; the load generator
# matches welcomes to its own requests. The demo's copy is pointed at the
# cluster and its consumer groups get a `demo-` prefix (it uses the host's
# group names). The host's groups resume from their last commit, so each
# host run first waits until its handlers report no lag (events the demo
# published meanwhile). The broker's CPU is not measured. (On tansu 0.6 a
# shared broker can stall a new kafkajs group: it starts inside the last
# record batch, which tansu's memory engine then never answers.)
#
# MODE=capacity measures the other way, closed loop, as the performance
# issue measured the demo: `wrk -t2 -c32 -d10s` POSTs /users as fast as each
# server answers (needs wrk: `apt-get install wrk`). It reports requests
# per second, wrk's latency percentiles and each process's CPU.
#
# Settings (environment):
#   MODE         open (default: the open-loop rates below) or capacity
#   CONNECTIONS  capacity: wrk's connections (32)
#   RATES        requests per second, one run each (500,1000,2000,4000)
#   DURATION     length of each run (10s)
#   DRAIN        wait for outstanding chains after a run (15s: the demo's
#                kafkajs consumer gets one fetch answer per ~2.5 s from tansu)
#   ONLY         host or demo: one side only
#   IDLE_HANDLERS  this many idle handlers loaded beside the demo's three (0)
#   HOST_ENV     more settings for event-host, e.g. "TOPIC_PARTITIONS=12 PARTITION_CONCURRENCY=12"
#   LOADGEN_ARGS more loadgen flags (see `loadgen --help`)
#   DEMO_SRC     the demo's folder (../shared/demo)
#   OUT          where reports and logs go (a new /tmp folder)
#   KAFKA_BROKERS a running cluster to use instead of fresh tansu brokers
#   BASELINE     a git revision of event-host to run too, before this tree's
#                host, with its own handlers and the same settings: what a
#                change did, side by side (e.g. BASELINE=563320b ONLY=host).
#                Built from `git archive` under $CARGO_TARGET_DIR-baseline.
#
# Broker, server and load generator share this machine's cores; the report
# says how busy each was, and how busy everything else on the machine was.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=${MODE:-open}
CONNECTIONS=${CONNECTIONS:-32}
RATES=${RATES:-500,1000,2000,4000}
DURATION=${DURATION:-10s}
DRAIN=${DRAIN:-15s}
ONLY=${ONLY:-}
IDLE_HANDLERS=${IDLE_HANDLERS:-0}
BASELINE=${BASELINE:-}
EXTERNAL_BROKERS=${KAFKA_BROKERS:-}
HOST_ENV=${HOST_ENV:-}
LOADGEN_ARGS=${LOADGEN_ARGS:-}
DEMO_SRC=${DEMO_SRC:-$ROOT/../shared/demo}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$(mktemp -d /tmp/event-host-compare.XXXXXX)}
mkdir -p "$OUT"
export PATH="$HOME/.cargo/bin:$PATH"

PIDS=()
DEMO_DIR=
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2> /dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Up to 10 s to shut down cleanly, then killed.
        for _ in $(seq 100); do
            kill -0 "$pid" 2> /dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2> /dev/null || true
        wait "$pid" 2> /dev/null || true
    done
    PIDS=()
}
cleanup() {
    stop_all
    if [[ -n $DEMO_DIR ]]; then rm -rf "$DEMO_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "==> $*" >&2; }

port_in_use() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

# Below the kernel's ephemeral range (32768+ here): a port a load generator
# just used for thousands of connections is not picked.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 12000))
        port_in_use "$p" || { echo "$p"; return; }
    done
}

wait_for() { # what seconds command...
    local what=$1 seconds=$2
    shift 2
    for _ in $(seq $((seconds * 10))); do
        "$@" && return 0
        sleep 0.1
    done
    echo "$what did not come up in ${seconds}s; logs in $OUT" >&2
    exit 1
}

healthy() { curl -sf --max-time 2 -o /dev/null "$1/health"; }

# Every handler has reported its lag, and it is 0 everywhere.
caught_up() {
    local handlers
    handlers=$(curl -sf --max-time 2 "$1/handlers") || return 1
    [[ $handlers == *'"lag":'* ]] && ! grep -Eq '"lag":(null|[1-9])' <<< "$handlers"
}

start_tansu() { # port log
    if [[ -n $EXTERNAL_BROKERS ]]; then
        BROKER_PID=
        return
    fi
    tansu broker --listener-url "tcp://127.0.0.1:$1" --advertised-listener-url "tcp://127.0.0.1:$1" \
        --storage-engine memory://tansu/ > "$2" 2>&1 &
    BROKER_PID=$!
    PIDS+=("$BROKER_PID")
    wait_for "tansu on port $1" 30 port_in_use "$1"
}

# Each start_* sets URL, BROKERS, SERVER_PID and BROKER_PID.
start_host() { # log-suffix
    local kafka_port http_port
    kafka_port=$(free_port)
    start_tansu "$kafka_port" "$OUT/tansu-host-$1.log"
    BROKERS=${EXTERNAL_BROKERS:-127.0.0.1:$kafka_port}
    http_port=$(free_port)
    # Without RUST_BACKTRACE: with it wasmtime captures a backtrace per event (BENCHMARKS.md).
    # shellcheck disable=SC2086 # HOST_ENV is a list of NAME=VALUE
    (cd "$ROOT" && exec env -u RUST_BACKTRACE KAFKA_BROKERS="$BROKERS" PORT="$http_port" \
        HANDLERS_DIR="${HOST_HANDLERS:-$HANDLERS}" LAG_INTERVAL_MS=500 $HOST_ENV \
        "${HOST_EXE:-$BIN/event-host}" > "$OUT/event-host-$1.log" 2>&1) &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    URL=http://127.0.0.1:$http_port
    wait_for "event-host" 60 healthy "$URL"
    if [[ -n $EXTERNAL_BROKERS ]]; then
        wait_for "event-host catching up with the cluster's backlog" 300 caught_up "$URL"
    fi
}

# The BASELINE build, with its own handlers.
start_baseline() { # log-suffix
    HOST_EXE=$BIN/event-host-baseline HOST_HANDLERS=$OUT/handlers-baseline start_host "baseline-$1"
}

start_demo() { # log-suffix
    local http_port
    start_tansu 9092 "$OUT/tansu-demo-$1.log"
    http_port=$(free_port)
    (cd "$DEMO_DIR" && PORT=$http_port exec node server.js > "$OUT/demo-$1.log" 2>&1) &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    URL=http://127.0.0.1:$http_port
    BROKERS=${EXTERNAL_BROKERS:-127.0.0.1:9092}
    wait_for "the demo" 60 healthy "$URL"
}

# Machine busy % over 3 s, before anything of ours runs.
machine_busy() {
    local a b
    read -ra a < <(head -1 /proc/stat)
    sleep 3
    read -ra b < <(head -1 /proc/stat)
    local total=0 idle i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    idle=$((b[4] - a[4] + b[5] - a[5]))
    echo $(((total - idle) * 100 / (total > 0 ? total : 1)))
}

# Runs every rate against one side, each on fresh processes, then merges.
run_side() { # side label
    local side=$1 label=$2 rate
    local jsons=()
    for rate in ${RATES//,/ }; do
        "start_$side" "$rate"
        say "$label at $rate/s ($URL, pid $SERVER_PID; broker $BROKERS, pid ${BROKER_PID:-external})"
        # shellcheck disable=SC2086 # LOADGEN_ARGS is a list of flags
        "$BIN/loadgen" --url "$URL" --brokers "$BROKERS" --label "$label" --rates "$rate" \
            --duration "$DURATION" --drain "$DRAIN" \
            --watch "server=$SERVER_PID" ${BROKER_PID:+--watch "broker=$BROKER_PID"} \
            --json "$OUT/$label-$rate.json" $LOADGEN_ARGS \
            > "$OUT/$label-$rate.md" 2> >(tee -a "$OUT/$label.progress" >&2)
        jsons+=("$OUT/$label-$rate.json")
        stop_all
    done
    "$BIN/loadgen" --merge "${jsons[@]}" > "$OUT/$label.md"
}

# CPU ticks of a process; 0 when there is none (an external broker).
cpu_ticks() { if [[ -n $1 ]]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi; }

# Closed loop: wrk as fast as the server answers, on fresh processes.
capacity_side() { # side label
    local side=$1 label=$2 server0 broker0 server1 broker1 started ended
    "start_$side" capacity
    say "$label: wrk -t2 -c$CONNECTIONS -d$DURATION ($URL, pid $SERVER_PID; broker pid ${BROKER_PID:-external})"
    curl -sf -o /dev/null -X POST "$URL/users" -H 'content-type: application/json' \
        -d '{"name":"Warm Up","email":"warm@example.com","age":30}'
    # The first seconds open connections and (for the demo) warm the JIT.
    wrk -t2 -c"$CONNECTIONS" -d2s -s "$OUT/post-users.lua" "$URL/users" > /dev/null 2>&1
    server0=$(cpu_ticks "$SERVER_PID")
    broker0=$(cpu_ticks "$BROKER_PID")
    started=$(date +%s.%N)
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$OUT/post-users.lua" "$URL/users" > "$OUT/$label-capacity.txt" 2>&1
    ended=$(date +%s.%N)
    server1=$(cpu_ticks "$SERVER_PID")
    broker1=$(cpu_ticks "$BROKER_PID")
    local rss
    rss=$(awk '/^VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$SERVER_PID/status")
    awk -v label="$label" -v s=$((server1 - server0)) -v b=$((broker1 - broker0)) \
        -v t0="$started" -v t1="$ended" -v hz="$(getconf CLK_TCK)" -v rss="$rss" -v external="$EXTERNAL_BROKERS" '
        /^Requests\/sec:/ { rps = $2 }
        /^RESULT / { p50 = $2; p99 = $3; p999 = $4; non2xx = $5; errors = $6 }
        END {
            t = t1 - t0
            if (rps == "" || p50 == "") { print "| " label " | wrk failed | | | | | | | |"; exit }
            broker = external == "" ? sprintf("%.0f", 100 * b / hz / t) : "n/a"
            printf "| %s | %.0f | %s | %s | %s | %d | %.0f | %s | %s |\n", label, rps, p50, p99, p999,
                non2xx + errors, 100 * s / hz / t, broker, rss
        }' "$OUT/$label-capacity.txt" >> "$OUT/capacity.md"
    stop_all
}

write_wrk_script() {
    cat > "$OUT/post-users.lua" << 'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"John Doe","email":"john@example.com","age":30}'
local bad = 0
response = function(status, headers, body)
  if status ~= 201 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.2f %.2f %.2f %d %d\n", latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, bad,
    e.connect + e.read + e.write + e.timeout))
end
LUA
}

if [[ $MODE == capacity ]] && ! command -v wrk > /dev/null; then
    echo "MODE=capacity needs wrk: apt-get install wrk" >&2
    exit 1
fi

say "building event-host and the load generator (release)"
# One build each: event-host as the image builds it, its features not
# unified with the load generator's dependencies.
(cd "$ROOT" && cargo build --release -p event-host --bin event-host &&
    cargo build --release -p event-host-bench --bin loadgen)
# The binaries under test, copied: a rebuild meanwhile cannot swap them.
BIN=$OUT/bin
mkdir -p "$BIN"
cp "$TARGET/release/event-host" "$TARGET/release/loadgen" "$BIN/"
# The demo's three handlers only, as the demo has: other components in
# handlers/ (the Python audit handler, built by its test, also reads
# user-events) would give the host more work per chain than the demo.
HANDLERS=$OUT/handlers
mkdir -p "$HANDLERS"
for h in user-handler order-handler notification-analytics; do
    cp "$ROOT/handlers/$h.wasm" "$HANDLERS/"
done
# IDLE_HANDLERS more, idle: the no-op test handler reads `bench`, which no
# one writes to, under names of its own (a consumer group each).
if ((IDLE_HANDLERS > 0)); then
    say "building the no-op handler for $IDLE_HANDLERS idle handlers"
    (cd "$ROOT" && cargo build --profile handler --target wasm32-wasip2 \
        -p noop-handler --target-dir "$TARGET/handlers")
    for i in $(seq -w 1 "$IDLE_HANDLERS"); do
        cp "$TARGET/handlers/wasm32-wasip2/handler/noop_handler.wasm" "$HANDLERS/idle-$i.wasm"
    done
fi

if [[ -n $BASELINE ]]; then
    base_rev=$(git -C "$ROOT" rev-parse --short "$BASELINE^{commit}")
    base_target=$TARGET-baseline
    base_src=$base_target/src-$base_rev
    if [[ ! -f $base_src/Cargo.toml ]]; then
        mkdir -p "$base_src"
        git -C "$ROOT" archive "$base_rev" | tar -x -C "$base_src"
    fi
    say "building the baseline, event-host $base_rev (release; its own target dir)"
    (cd "$base_src" && CARGO_TARGET_DIR=$base_target cargo build --release -p event-host --bin event-host)
    cp "$base_target/release/event-host" "$BIN/event-host-baseline"
    mkdir -p "$OUT/handlers-baseline"
    for h in user-handler order-handler notification-analytics; do
        cp "$base_src/handlers/$h.wasm" "$OUT/handlers-baseline/"
    done
fi

busy=$(machine_busy)
say "machine busy before the runs: $busy %"
if ((busy > 15)); then
    echo "warning: something else is using the machine ($busy % busy): figures will be off" >&2
fi

if [[ $MODE == capacity ]]; then
    write_wrk_script
    : > "$OUT/capacity.md"
fi

run() { # side label
    if [[ $MODE == capacity ]]; then capacity_side "$@"; else run_side "$@"; fi
}

if [[ $ONLY != demo ]]; then
    if [[ -n $BASELINE ]]; then run baseline "event-host-baseline"; fi
    run host event-host
fi

if [[ $ONLY != host ]]; then
    if [[ -z $EXTERNAL_BROKERS ]] && port_in_use 9092; then
        echo "port 9092 is in use: the demo needs it for its broker (it hard-codes localhost:9092)" >&2
        exit 1
    fi
    say "demo: installing its dependencies"
    DEMO_DIR=$(mktemp -d /tmp/event-host-demo.XXXXXX)
    cp "$DEMO_SRC/server.js" "$DEMO_SRC/package.json" "$DEMO_DIR/"
    chmod u+w "$DEMO_DIR"/*
    if [[ -n $EXTERNAL_BROKERS ]]; then
        # The demo hard-codes localhost:9092; point its copy at the cluster.
        list="'$(printf '%s' "$EXTERNAL_BROKERS" | sed "s/,/','/g")'"
        sed -i "s/\['localhost:9092'\]/[$list]/" "$DEMO_DIR/server.js"
        grep -qF "[$list]" "$DEMO_DIR/server.js" || { echo "cannot point the demo at $EXTERNAL_BROKERS" >&2; exit 1; }
        # Its groups are named as the host's handlers: keep them apart.
        sed -i "s/createConsumer('\([a-z-]*\)'/createConsumer('demo-\1'/" "$DEMO_DIR/server.js"
        if (($(grep -c "createConsumer('demo-" "$DEMO_DIR/server.js") != 3)); then
            echo "cannot rename the demo's consumer groups" >&2
            exit 1
        fi
    fi
    (cd "$DEMO_DIR" && npm install --omit=dev --no-audit --no-fund --loglevel=error > "$OUT/npm.log" 2>&1)
    DEMO_VERSIONS="node $(node --version), kafkajs $(node -p "require('$DEMO_DIR/node_modules/kafkajs/package.json').version"), express $(node -p "require('$DEMO_DIR/node_modules/express/package.json').version")"
    run demo node-demo
fi

tree="$(git -C "$ROOT" rev-parse --short HEAD)"
if ! git -C "$ROOT" diff --quiet HEAD -- Cargo.toml Cargo.lock host/src host/build.rs handlers wit 2> /dev/null; then
    tree="$tree + uncommitted changes ($(git -C "$ROOT" diff --stat HEAD -- Cargo.toml Cargo.lock host/src host/build.rs handlers wit | tail -1 | sed 's/^ *//'))"
fi
echo
if [[ $MODE == capacity ]]; then
    echo "## event-host vs the original demo, closed loop: POST /users capacity ($(date -u '+%Y-%m-%d %H:%M UTC'))"
else
    echo "## event-host vs the original demo, open loop ($(date -u '+%Y-%m-%d %H:%M UTC'))"
fi
echo
echo "- machine: $(nproc) vCPU ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(free -g | awk '/^Mem:/ {print $2}') GiB, Linux $(uname -r); $busy % busy before the runs"
if [[ -n $EXTERNAL_BROKERS ]]; then
    echo "- broker: the cluster at $EXTERNAL_BROKERS, shared by every run; server and load generator share these $(nproc) vCPUs, and a fresh server runs each rate"
else
    echo "- broker, server and load generator all share these $(nproc) vCPUs; every rate runs on a fresh tansu (memory engine) and a fresh server"
fi
broker_version=$(tansu --version 2> /dev/null || echo 'tansu ?')
if [[ -n $EXTERNAL_BROKERS ]]; then broker_version="broker at $EXTERNAL_BROKERS"; fi
echo "- versions: $(rustc --version | cut -d' ' -f1-2), $broker_version${DEMO_VERSIONS:+, $DEMO_VERSIONS}"
echo "- event-host: $tree${HOST_ENV:+, with $HOST_ENV}"
if [[ -n $BASELINE ]]; then echo "- event-host-baseline: $base_rev, the same settings"; fi
if [[ $MODE == capacity ]]; then
    echo "- wrk -t2 -c$CONNECTIONS -d$DURATION after a 2 s warm-up; reports and logs in $OUT"
    echo
    echo "| server | requests/s | p50 ms | p99 ms | p99.9 ms | not 201 | server CPU % | broker CPU % | server peak RSS MiB |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    cat "$OUT/capacity.md"
    exit 0
fi
echo "- rates $RATES, $DURATION each; reports, JSON and logs in $OUT"
for label in event-host-baseline event-host node-demo; do
    if [[ -f $OUT/$label.md ]]; then cat "$OUT/$label.md"; fi
done
