#!/usr/bin/env bash
# Reconnect storm: broker-server beside mosquitto and rumqttd, measured by
# `mqtt bench storm`.
#
# For each broker and each case it starts the broker afresh on a free loopback port
# (so that the peak RSS, VmHWM, belongs to that case alone), runs one storm with
# --broker-pid, stops it. Cases:
#
#   clean       N clients with clean sessions connect at once
#   persistent  N sessions established (clean session 0), every connection dropped
#               without DISCONNECT, then the N clients storm back; session present
#               is counted
#
# Prints one table and writes every report as JSON.
#
#   scripts/bench-storm.sh                       # 19,000 clients (needs ulimit -Hn ≥ 20,000)
#   scripts/bench-storm.sh --count 5000 --quick  # smaller, under a minute
#   scripts/bench-storm.sh --concurrency 1000    # at most 1,000 handshakes at once
#
# Brokers: as in scripts/bench-compare.sh (ours built by this script; Debian's
# mosquitto; rumqttd if $RUMQTTD or $BENCH_TOOLS/bin/rumqttd exists). Every broker
# speaks MQTT 3.1.1 here. The clients wait up to --connect-timeout (default 60 s) for
# their CONNACK: a SYN dropped on a full listen queue is retried by the kernel after
# 1 s, 3 s, 7 s, 15 s, as a device's stack would. The brokers wait as long for the
# CONNECT (ours: limits.connect_timeout_secs = 60, default 10; rumqttd:
# connection_timeout_ms = 60000; mosquitto has no such limit): in a storm a CONNECT
# whose segment was dropped comes again only at the client's next retransmission,
# seconds later. The listen backlog each broker asks for (ours: somaxconn, 128 before;
# rumqttd 0.20: 128; mosquitto 2.0: 100) is printed from `ss` beside the kernel's cap
# (net.core.somaxconn). OURS_BIN and MQTT override the binaries (not BROKER_*:
# broker-server reads those variables as configuration).
set -euo pipefail

# The brokers, their configurations, free ports, the exit trap.
source "$(dirname "$0")/bench-brokers.sh"
OURS_ARGS=(--set limits.connect_timeout_secs=60)

BROKERS=ours,mosquitto,rumqttd
CASES=clean,persistent
COUNT=19000
CONCURRENCY=0
CONNECT_TIMEOUT=60
BUILD=1
OUT=""

usage() {
  cat <<EOF
usage: $0 [--count N] [--concurrency N] [--cases clean,persistent]
          [--brokers ours,mosquitto,rumqttd] [--connect-timeout S] [--out DIR] [--no-build]
  --count N          clients per storm (default $COUNT; the tool and the broker each
                     hold one socket per client: ulimit -Hn must allow it)
  --concurrency N    handshakes in progress at once (default 0: all at once)
  --cases            which cases (default $CASES)
  --brokers          which brokers (default $BROKERS)
  --connect-timeout  seconds each client waits for its CONNACK (default $CONNECT_TIMEOUT)
  --quick            --count 5000
  --out DIR          where the configurations, logs and results.json go (default: a new
                     directory under \${TMPDIR:-/tmp})
  --no-build         use the release binaries already in $TARGET/release
EOF
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --count) COUNT=$2; shift ;;
    --concurrency) CONCURRENCY=$2; shift ;;
    --cases) CASES=$2; shift ;;
    --brokers) BROKERS=$2; shift ;;
    --connect-timeout) CONNECT_TIMEOUT=$2; shift ;;
    --quick) COUNT=5000 ;;
    --out) OUT=$2; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

RUMQTTD_MAX_CONNECTIONS=$((COUNT + 100))
command -v jq >/dev/null || { echo "needs jq (apt-get install jq)" >&2; exit 2; }
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/bench-storm.XXXXXX")}
mkdir -p "$OUT"

if [[ $BUILD == 1 ]]; then
  (cd "$REPO" && cargo build --release -p broker-server --bin broker-server -p native-client --bin mqtt)
fi
MQTT=${MQTT:-$TARGET/release/mqtt}
BROKER_SERVER=${OURS_BIN:-$TARGET/release/broker-server}

# One socket per client in the tool and in the broker.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < COUNT + 500 )); then
  echo "open-file limit $(ulimit -n) is too low for $COUNT clients" >&2
  exit 2
fi

RESULTS=$OUT/results.jsonl
: > "$RESULTS"
IFS=, read -ra WANT <<< "$BROKERS"
IFS=, read -ra WANT_CASES <<< "$CASES"
for broker in "${WANT[@]}"; do
  available "$broker" || continue
  for case in "${WANT_CASES[@]}"; do
    case "$case" in
      clean) extra=() ;;
      persistent) extra=(--persistent) ;;
      *) echo "unknown case $case" >&2; exit 2 ;;
    esac
    port=$(free_port)
    "start_$broker" "$port"
    if ! wait_port "$port" "$BROKER_PID"; then
      echo "$broker did not start; see $OUT/$broker.log" >&2
      exit 1
    fi
    backlog=$(ss -ltnH "sport = :$port" | awk '{print $3; exit}')
    echo "$broker: $case ($COUNT clients, listen backlog ${backlog:-?})" >&2
    if ! timeout 600 "$MQTT" bench storm -p "$port" -V 311 -c "$COUNT" \
        --concurrency "$CONCURRENCY" --connect-timeout "$CONNECT_TIMEOUT" "${extra[@]}" \
        --broker-pid "$BROKER_PID" --label "$broker/$case/${backlog:-?}" --json --timeout 500 \
        >> "$RESULTS" 2>> "$OUT/mqtt-bench.log"; then
      echo "  failed: see $OUT/mqtt-bench.log" >&2
    fi
    stop_broker
  done
done

jq -s . "$RESULTS" > "$OUT/results.json"
{
  printf 'case\tbroker\tbacklog\tconnected\ttime to all ms\thandshake p50/p99/max ms\tCONNECT→CONNACK p50/p99/max ms\tsession present\tfailed (TCP refused/reset, CONNACK refused, timeout, other)\tbroker peak RSS MiB\tbroker CPU %%\ttool CPU %%\n'
  jq -r '
    def ms: if . == null then "-" else (. / 100 | round) / 10 end;
    def three($l): if $l == null then "-" else "\($l.p50 | ms)/\($l.p99 | ms)/\($l.max | ms)" end;
    (.label | split("/")) as [$broker, $case, $backlog]
    | .connections as $c | .storm as $s | $s.failures as $f
    | [$case, $broker, $backlog, $c.connected, $c.time_to_all_ms,
       three($c.connack_latency_us), three($s.connect_to_connack_us),
       (if $s.persistent then $s.session_present else "-" end),
       "\($f.tcp_refused)/\($f.tcp_reset), \($f.connack_refused), \($f.timeout), \($f.other)",
       (if $s.broker_peak_rss_kib then ($s.broker_peak_rss_kib / 1024 * 10 | floor) / 10 else "-" end),
       (.broker_cpu_pct // "-"), (.client_cpu_pct // "-")]
    | @tsv' "$RESULTS" | sort -s -t $'\t' -k1,1
} | column -t -s $'\t' | tee "$OUT/table.txt"
echo
echo "handshake: TCP connect → CONNACK (SYN retransmissions included); CONNECT→CONNACK:"
echo "CONNECT written → CONNACK read; backlog: the listen queue the broker asked for (ss),"
echo "capped by net.core.somaxconn = $(cat /proc/sys/net/core/somaxconn 2>/dev/null || echo ?)"
echo "JSON: $OUT/results.json"
