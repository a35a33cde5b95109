#!/usr/bin/env bash
# The demo: installs dependencies, builds vitalgate, creates a private CA with broker and gateway
# certificates, starts a local mosquitto that requires mutual TLS on localhost:8883, runs
# vitalgate on five simulated patients (config/demo.json), and prints alerts as they arrive.
# Stop with Ctrl-C; DEMO_SECONDS=N stops after N seconds. Everything lives in demo-run/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
run="$root/demo-run"

scripts/install-deps.sh
echo "== building (release)"
cmake --preset release >/dev/null
cmake --build --preset release -j "${JOBS:-2}" --target vitalgate
bin="$root/build/release/src/vitalgate"

mkdir -p "$run"
rm -f "$run"/buffer.db*
[ -f "$run/certs/client.key" ] || scripts/gen-certs.sh "$run/certs" ward7-gw1 >/dev/null

cat > "$run/mosquitto.conf" <<CONF
per_listener_settings false
allow_anonymous true
persistence false
$( [ "$(id -u)" = 0 ] && echo "user root" )
log_dest file $run/mosquitto.log
listener 8883 127.0.0.1
cafile $run/certs/ca.crt
certfile $run/certs/server.crt
keyfile $run/certs/server.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
CONF

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo
  echo "== demo stopped; logs in $run/"
}
trap cleanup EXIT INT TERM

mosquitto -c "$run/mosquitto.conf" &
pids+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/8883) 2>/dev/null && break; sleep 0.1; done

"$bin" check --config config/demo.json | head -12
"$bin" run --config config/demo.json 2>"$run/vitalgate.log" &
pids+=($!)

echo "== vitalgate is forwarding to mqtts://localhost:8883 (mutual TLS); gateway log: $run/vitalgate.log"
echo "== health: curl -s http://127.0.0.1:9102/healthz   metrics: curl -s http://127.0.0.1:9102/metrics"
echo "== alerts as they arrive (Ctrl-C to stop):"
sub=(mosquitto_sub -h localhost -p 8883 --cafile "$run/certs/ca.crt" --cert "$run/certs/client.crt"
     --key "$run/certs/client.key" -t 'vitalgate/v1/ward7-gw1/alerts/#' -q 1)
if [ -n "${DEMO_SECONDS:-}" ]; then sub=(timeout "$DEMO_SECONDS" "${sub[@]}"); fi
"${sub[@]}" | python3 -u scripts/show-alerts.py || true
