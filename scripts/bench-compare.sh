#!/usr/bin/env bash
# Compares broker-server with mosquitto and rumqttd, measured by `mqtt bench`.
#
# Builds broker-server and the `mqtt` command line (release), then for each broker:
# starts it on a free loopback port with a generated configuration (queue and in-flight
# limits raised alike, so that the brokers and not their defaults are measured), runs
# every scenario with --broker-pid (broker CPU from /proc/PID/stat, RSS from
# /proc/PID/status), stops it. Prints one table, and writes every report as JSON.
#
#   scripts/bench-compare.sh            # full run: a few minutes on 2 cores
#   scripts/bench-compare.sh --quick    # smaller counts: under a minute
#
# Brokers: ours (target/release/broker-server, built by this script), Debian's
# mosquitto, and rumqttd if installed; how each is started and configured is in
# scripts/bench-brokers.sh.
#
# Every broker speaks MQTT 3.1.1 here (rumqttd's MQTT 5 listener is separate and
# partial). The tool and the broker share the machine: compare brokers by the figures
# of one run, and look at the tool's CPU column (near 100 % = the tool may be the limit).
set -euo pipefail

# The brokers, their configurations, free ports, the exit trap.
source "$(dirname "$0")/bench-brokers.sh"
OURS_ARGS=(--set limits.max_inflight=100 --set limits.max_queued_messages=1000000
  --set limits.max_queued_bytes=1073741824)
MOSQUITTO_EXTRA="max_inflight_messages 100
max_queued_messages 1000000
max_packet_size 1048576"

BROKERS=ours,mosquitto,rumqttd
QUICK=0
BUILD=1
OUT=""

usage() {
  cat <<EOF
usage: $0 [--quick] [--brokers ours,mosquitto,rumqttd] [--out DIR] [--no-build]
  --quick      a fifth of the counts or less, 3 s latency runs: under a minute
  --brokers    which brokers to run (default: $BROKERS)
  --out DIR    where the configurations, logs and results.json go (default: a new
               directory under \${TMPDIR:-/tmp})
  --no-build   use the release binaries already in $TARGET/release
EOF
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --brokers) BROKERS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

command -v jq >/dev/null || { echo "needs jq (apt-get install jq)" >&2; exit 2; }
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/bench-compare.XXXXXX")}
mkdir -p "$OUT"

if [[ $BUILD == 1 ]]; then
  (cd "$REPO" && cargo build --release -p broker-server --bin broker-server -p native-client --bin mqtt)
fi
MQTT=$TARGET/release/mqtt
BROKER_SERVER=$TARGET/release/broker-server

# Scenarios: name and `mqtt bench` arguments. Flat-out runs measure throughput (and
# their latency is queueing delay); the latency runs are at a fixed 1000 msgs/s.
if [[ $QUICK == 1 ]]; then
  SCENARIOS=(
    "conn|conn -c 500 --rate 1000 --hold 0.5"
    "fanin-q0|fanin -c 8 -m 20000 -q 0"
    "fanin-q1|fanin -c 8 -m 5000 -q 1"
    "fanout-q0|fanout -c 20 -m 5000 -q 0"
    "fanout-q1|fanout -c 20 -m 1000 -q 1"
    "latency-q0|latency -r 1000 --duration 3 --warmup 0.5 -q 0"
    "latency-q1|latency -r 1000 --duration 3 --warmup 0.5 -q 1"
  )
else
  SCENARIOS=(
    "conn|conn -c 2000 --rate 1000 --hold 1"
    "fanin-q0|fanin -c 8 -m 100000 -q 0"
    "fanin-q1|fanin -c 8 -m 25000 -q 1"
    "fanout-q0|fanout -c 20 -m 20000 -q 0"
    "fanout-q1|fanout -c 20 -m 5000 -q 1"
    "latency-q0|latency -r 1000 --duration 10 --warmup 1 -q 0"
    "latency-q1|latency -r 1000 --duration 10 --warmup 1 -q 1"
  )
fi

# Many connections: as many open files as allowed, for this shell and the brokers.
ulimit -n 65535 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

RESULTS=$OUT/results.jsonl
: > "$RESULTS"
IFS=, read -ra WANT <<< "$BROKERS"
for broker in "${WANT[@]}"; do
  available "$broker" || continue
  port=$(free_port)
  "start_$broker" "$port"
  if ! wait_port "$port" "$BROKER_PID"; then
    echo "$broker did not start; see $OUT/$broker.log" >&2
    exit 1
  fi
  for scenario in "${SCENARIOS[@]}"; do
    name=${scenario%%|*}
    read -ra args <<< "${scenario#*|}"
    echo "$broker: $name" >&2
    if ! timeout 300 "$MQTT" bench "${args[@]}" -p "$port" -V 311 --broker-pid "$BROKER_PID" \
        --label "$broker/$name" --json --timeout 240 >> "$RESULTS" 2>> "$OUT/mqtt-bench.log"; then
      echo "  failed: see $OUT/mqtt-bench.log" >&2
    fi
  done
  stop_broker
done

jq -s . "$RESULTS" > "$OUT/results.json"
{
  printf 'scenario\tbroker\tmsgs/s\tp50 µs\tp99 µs\tlost\tbroker CPU %%\tbroker RSS MiB\ttool CPU %%\n'
  jq -r '
    (.label | split("/")) as [$broker, $name]
    | (.traffic // {}) as $t | (.connections // {}) as $c
    | ($t.latency_us // $c.connack_latency_us // {}) as $l
    | [$name, $broker,
       (($t.recv_rate // $c.connect_rate // 0) | floor),
       ($l.p50 // "-"), ($l.p99 // "-"),
       ($t.lost // ($c.refused + $c.errors)),
       (.broker_cpu_pct // "-"),
       (if .broker_rss_kib then (.broker_rss_kib / 1024 * 10 | floor) / 10 else "-" end),
       (.client_cpu_pct // "-")]
    | @tsv' "$RESULTS" | sort -s -t $'\t' -k1,1
} | column -t -s $'\t' | tee "$OUT/table.txt"
echo
echo "msgs/s: deliveries per second (fanout: all subscribers; conn: connects per second);"
echo "p50/p99: publish→delivery (conn: connect→CONNACK); lost: undelivered (conn: refused + failed)"
echo "JSON: $OUT/results.json"
