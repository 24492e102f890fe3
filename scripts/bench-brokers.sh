# Sourced by scripts/bench-compare.sh and scripts/bench-storm.sh: the three brokers they
# run, each started afresh on a free loopback port with a generated configuration.
#
# The sourcing script sets, before calling start_<broker>:
#   OUT            the directory for configurations and logs
#   BROKER_SERVER  our binary; OURS_ARGS: its `--set` options beyond the common ones
#   MOSQUITTO_EXTRA        configuration lines mosquitto gets beyond the common ones
#   RUMQTTD_MAX_CONNECTIONS  rumqttd's router limit
# and reads BROKER_PID (the broker running now; stop_broker ends it, and so does the
# exit trap).
#
# Brokers:
#   ours       target/release/broker-server
#   mosquitto  Debian's `mosquitto` (apt-get install mosquitto), TCP listener on
#              127.0.0.1 only; its WebSocket listener is never opened (Debian's 2.0.x
#              binds it on every interface whatever address it is given)
#   rumqttd    optional: cargo install rumqttd --root "$BENCH_TOOLS" (from crates.io;
#              default BENCH_TOOLS: target/bench-tools), or set RUMQTTD=/path. Not
#              --locked: rumqttd 0.20.0's lock file pins metrics 0.22.1, which Rust 1.95
#              no longer compiles (E0521); the resolver picks the fixed 0.22.4.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BENCH_TOOLS=${BENCH_TOOLS:-$REPO/target/bench-tools}
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
RUMQTTD=${RUMQTTD:-$(command -v rumqttd || echo "$BENCH_TOOLS/bin/rumqttd")}
OURS_ARGS=()
MOSQUITTO_EXTRA=""
RUMQTTD_MAX_CONNECTIONS=20010

BROKER_PID=""
stop_broker() {
  if [[ -n $BROKER_PID ]]; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  BROKER_PID=""
}
trap stop_broker EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # port pid
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

start_ours() { # port
  "$BROKER_SERVER" --tcp "127.0.0.1:$1" --set 'http.listeners=[]' \
    --set storage.backend=memory --set sys.interval_secs=0 --set log.level=warn \
    "${OURS_ARGS[@]}" >> "$OUT/ours.log" 2>&1 &
  BROKER_PID=$!
}

start_mosquitto() { # port
  cat > "$OUT/mosquitto.conf" <<EOF
# written by $(basename "$0")
per_listener_settings false
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
max_connections -1
$MOSQUITTO_EXTRA
listener $1 127.0.0.1
protocol mqtt
EOF
  "$MOSQUITTO" -c "$OUT/mosquitto.conf" >> "$OUT/mosquitto.log" 2>&1 &
  BROKER_PID=$!
}

start_rumqttd() { # port
  cat > "$OUT/rumqttd.toml" <<EOF
# written by $(basename "$0"): router limits as rumqttd.toml ships them, more connections
id = 0
[router]
id = 0
max_connections = $RUMQTTD_MAX_CONNECTIONS
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:$1"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576
    max_inflight_count = 500
    dynamic_filters = true
EOF
  "$RUMQTTD" -q -c "$OUT/rumqttd.toml" >> "$OUT/rumqttd.log" 2>&1 &
  BROKER_PID=$!
}

available() { # broker
  case "$1" in
    ours) [[ -x $BROKER_SERVER ]] || { echo "skipped: $BROKER_SERVER not built"; return 1; } ;;
    mosquitto) [[ -x $MOSQUITTO ]] || { echo "skipped: mosquitto not installed (apt-get install mosquitto)"; return 1; } ;;
    rumqttd) [[ -x $RUMQTTD ]] || { echo "skipped: rumqttd not installed (cargo install rumqttd --root $BENCH_TOOLS)"; return 1; } ;;
    *) echo "unknown broker $1" >&2; exit 2 ;;
  esac
}
