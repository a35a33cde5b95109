#!/usr/bin/env bash
# The Debian package as hospital IT meets it, on this machine (root; CI runs as root):
# build it, lintian, install with dpkg, check files, owners and modes, the unit
# (systemd-analyze verify and security), `vitalgate check` on the shipped configuration, then
# the daemon exactly as the unit runs it (its ExecStartPre and ExecStart lines, its user, groups
# and umask) against a mosquitto with mutual TLS on loopback until it publishes, certificate
# rotation by SIGHUP, backup and restore of the outbox, an upgrade over itself (the
# administrator's configuration and the outbox are kept), remove (data kept) and purge (data
# gone). Commands shown in docs/operations.md are run here as written there.
#   tests/package/test-package.sh            build the package, then test it
#   VITALGATE_DEB=path.deb tests/package/test-package.sh   test an already built package
# Every wait has a deadline; the whole run takes a few minutes, most of it the build.
set -euo pipefail
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "test-package: needs root (it installs the package)" >&2; exit 1; }

work=$(mktemp -d /tmp/vitalgate-package.XXXXXX)
passed=0
ok() { passed=$((passed + 1)); echo "ok $passed - $*"; }
fail() { echo "FAIL: $*" >&2; echo "package: $passed passed, 1 failed"; exit 1; }
expect_eq() { [ "$1" = "$2" ] || fail "$3: expected \"$2\", got \"$1\""; ok "$3"; }
expect_file_mode() { # path owner:group mode
  [ -e "$1" ] || fail "$1 is missing"
  expect_eq "$(stat -c '%U:%G %a' "$1")" "$2 $3" "$1 is $2 $3"
}
# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

# dpkg refuses to run while another dpkg or apt holds its lock: wait up to 3 minutes for it.
dpkg_wait() {
  local deadline=$((SECONDS + 180)) out rc
  while :; do
    rc=0
    out=$(dpkg "$@" 2>&1) || rc=$?
    case "$out" in *"dpkg frontend lock"* | *"dpkg status database is locked"*)
      [ $SECONDS -lt $deadline ] && { sleep 2; continue; } ;; esac
    printf '%s\n' "$out"
    return $rc
  done
}
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=180 "$@"; }

broker_pid=""
daemon_pid=""
cleanup() {
  set +e
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
  if dpkg-query -W -f='${Status}' vitalgate 2>/dev/null | grep -q 'ok installed\|config-files'; then
    dpkg_wait --purge vitalgate >/dev/null 2>&1
  fi
  rm -rf /etc/vitalgate /var/backups/vitalgate "$work"
}
trap cleanup EXIT

# --- build and lint ----------------------------------------------------------------------------
if [ -n "${VITALGATE_DEB:-}" ]; then
  deb=$(realpath "$VITALGATE_DEB")
  changes=""
else
  echo "== building the package"
  # No debug symbols package here: it only costs the test time (compressing its debug info).
  DEB_BUILD_OPTIONS="noddebs ${DEB_BUILD_OPTIONS:-}" \
    timeout 1200 "$source_dir/scripts/build-deb.sh" "$work/deb" >"$work/build.log" 2>&1 ||
    { tail -40 "$work/build.log"; fail "the package did not build"; }
  deb=$(ls "$work"/deb/vitalgate_*.deb)
  changes=$(ls "$work"/deb/vitalgate_*.changes)
fi
version=$(dpkg-deb -f "$deb" Version)
expect_eq "$version" "$(sed -n 's/^project(vitalgate VERSION \([0-9.]*\).*/\1/p' "$source_dir/CMakeLists.txt")" \
  "the package version is the project version"

echo "== lintian"
timeout 600 lintian --fail-on error --display-level '>=warning' ${changes:-$deb} >"$work/lintian.log" 2>&1 ||
  { cat "$work/lintian.log"; fail "lintian reports errors"; }
cat "$work/lintian.log"
ok "lintian reports no error"

depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libmosquitto1 libssl3 libsqlite3-0 libsystemd0 adduser; do
  case "$depends" in *"$lib"*) ok "Depends names $lib" ;; *) fail "Depends lacks $lib: $depends" ;; esac
done

# --- install ------------------------------------------------------------------------------------
if dpkg-query -W -f='${Status}' vitalgate 2>/dev/null | grep -q 'ok installed\|config-files'; then
  echo "== purging a vitalgate left installed by an earlier run"
  dpkg_wait --purge vitalgate >/dev/null
fi
rm -rf /etc/vitalgate /var/lib/vitalgate
echo "== dpkg -i $(basename "$deb")"
dpkg_wait -i "$deb" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "dpkg -i failed"; }
ok "dpkg -i installs the package"

expect_file_mode /usr/bin/vitalgate root:root 755
expect_file_mode /lib/systemd/system/vitalgate.service root:root 644
expect_file_mode /etc/vitalgate root:vitalgate 750
expect_file_mode /etc/vitalgate/vitalgate.json root:root 644
expect_file_mode /var/lib/vitalgate vitalgate:vitalgate 700
expect_file_mode /usr/share/man/man8/vitalgate.8.gz root:root 644
for doc in operations.md security.md config.md README.md copyright changelog.gz \
           examples/vitalgate.example.json; do
  [ -f "/usr/share/doc/vitalgate/$doc" ] || fail "/usr/share/doc/vitalgate/$doc is missing"
done
ok "the documents are in /usr/share/doc/vitalgate"
dpkg-query -W -f='${Conffiles}\n' vitalgate | grep -q '^ /etc/vitalgate/vitalgate.json ' ||
  fail "/etc/vitalgate/vitalgate.json is not a conffile"
ok "/etc/vitalgate/vitalgate.json is a conffile"
grep -q simulator /etc/vitalgate/vitalgate.json && fail "the shipped configuration has a simulator"
ok "the shipped configuration has no simulator"
expect_eq "$(getent passwd vitalgate | cut -d: -f7)" /usr/sbin/nologin "vitalgate has no login shell"
[ "$(id -u vitalgate)" -lt 1000 ] || fail "vitalgate is not a system user"
ok "vitalgate is a system user"
groups=" $(id -nG vitalgate) "
wanted_groups="vitalgate dialout"
getent group bluetooth >/dev/null && wanted_groups="$wanted_groups bluetooth"
for g in $wanted_groups; do
  case "$groups" in *" $g "*) ok "vitalgate is in the group $g" ;; *) fail "vitalgate is not in $g:$groups" ;; esac
done
man -w vitalgate >/dev/null || fail "man vitalgate finds no page"
ok "man vitalgate finds vitalgate(8)"

# --- the unit -----------------------------------------------------------------------------------
unit=/lib/systemd/system/vitalgate.service
verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify prints: $verify"
ok "systemd-analyze verify is clean"
exposure=$(systemd-analyze security --offline=yes "$unit" 2>&1 |
           sed -n 's/.*Overall exposure level for vitalgate.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "systemd-analyze security printed no exposure level"
awk -v e="$exposure" 'BEGIN { exit !(e <= 1.5) }' || fail "exposure $exposure > 1.5"
ok "systemd-analyze security exposure $exposure <= 1.5"
unit_value() { sed -n "s/^$1=//p" "$unit" | tail -1; }
unit_user=$(unit_value User)
unit_group=$(unit_value Group)
unit_umask=$(unit_value UMask)
exec_pre=$(unit_value ExecStartPre)
exec_pre=${exec_pre#-}  # systemd's prefix: a failure is left to ExecStart
exec_start=$(unit_value ExecStart)
expect_eq "$unit_user:$unit_group" vitalgate:vitalgate "the unit runs as vitalgate:vitalgate"
grep -q '^DynamicUser=' "$unit" && fail "the unit still uses DynamicUser"
# Runs a command line as the unit does: its user, group and the user's groups, no privileges,
# its umask, a clean environment. Each program execs the next, so a background start's $! is
# the daemon's own process id.
as_unit_prefix=(env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/var/lib/vitalgate
  USER="$unit_user" LOGNAME="$unit_user"
  setpriv --reuid="$unit_user" --regid="$unit_group" --init-groups --no-new-privs
  --inh-caps=-all --bounding-set=-all -- sh -c "umask $unit_umask && cd / && exec \"\$@\"" sh)
as_unit() { "${as_unit_prefix[@]}" "$@"; }

# --- vitalgate check on the shipped configuration ----------------------------------------------
set +e
out=$(as_unit $exec_pre 2>&1)
rc=$?
set -e
expect_eq "$rc" 2 "check on the shipped configuration exits 2"
case "$out" in *"not configured yet"*"mqtt"*"devices"*) ok "it says the broker and devices must be configured" ;;
  *) fail "unexpected message: $out" ;; esac
# The unit leaves the decision to ExecStart, whose exit status 2 systemd does not restart.
grep -q '^RestartPreventExitStatus=2$' "$unit" || fail "the unit restarts after exit status 2"
set +e
out=$(timeout 30 "${as_unit_prefix[@]}" $exec_start 2>&1)
rc=$?
set -e
expect_eq "$rc" 2 "run on the shipped configuration exits 2 (RestartPreventExitStatus=2)"
case "$out" in *"not configured yet"*) ok "run says so too" ;; *) fail "unexpected message: $out" ;; esac

# --- first configuration, as docs/operations.md shows it ---------------------------------------
echo "== configuring against a mosquitto with mutual TLS on loopback"
"$source_dir/scripts/gen-certs.sh" "$work/pki" ward7-gw1 >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/mosquitto.conf" <<EOF
user root
per_listener_settings false
allow_anonymous true
persistence false
log_dest stderr
listener $port 127.0.0.1
cafile $work/pki/ca.crt
certfile $work/pki/server.crt
keyfile $work/pki/server.key
require_certificate true
tls_version tlsv1.2
EOF
mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" &
broker_pid=$!
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null || fail "mosquitto did not start"

# The certificates and key as the hospital PKI hands them over, installed as documented.
(
  cd "$work/pki"
  cp client.crt gateway.crt && cp client.key gateway.key
  install -m 0644 ca.crt /etc/vitalgate/ca.crt
  install -m 0644 gateway.crt /etc/vitalgate/gateway.crt
  install -o root -g vitalgate -m 0640 gateway.key /etc/vitalgate/gateway.key
)
expect_file_mode /etc/vitalgate/gateway.key root:vitalgate 640
gw=pkgtest-gw1
cat >/etc/vitalgate/vitalgate.json <<EOF
{
  "gateway": { "id": "$gw", "site": "package test" },
  "storage": { "path": "/var/lib/vitalgate/buffer.db", "max_bytes": 536870912 },
  "mqtt": {
    "host": "localhost", "port": $port, "client_id": "$gw",
    "tls": { "ca_file": "ca.crt", "cert_file": "gateway.crt", "key_file": "gateway.key" },
    "reconnect_min_ms": 100, "reconnect_max_ms": 1000
  },
  "http": { "listen": "" },
  "patients": [ { "id": "p-001" } ],
  "devices": [
    { "id": "sim-1", "patient": "p-001", "transport": { "type": "simulator", "scenario": "stable" } }
  ]
}
EOF
config_sum=$(sha256sum /etc/vitalgate/vitalgate.json | cut -d' ' -f1)

runuser -u vitalgate -- vitalgate check --config /etc/vitalgate/vitalgate.json >"$work/check.txt" ||
  { cat "$work/check.txt"; fail "check refuses the configured file"; }
grep -q "^cert: *mqtt.tls.cert_file CN=ward7-gw1, notBefore .*, notAfter " "$work/check.txt" ||
  { cat "$work/check.txt"; fail "check does not show the client certificate"; }
ok "check (as user vitalgate) accepts root:vitalgate 0640 keys and shows the certificates"
chmod 0644 /etc/vitalgate/gateway.key
set +e
out=$(as_unit $exec_pre 2>&1)
rc=$?
set -e
chmod 0640 /etc/vitalgate/gateway.key
expect_eq "$rc" 2 "a world-readable key is refused"
case "$out" in *"mqtt.tls.key_file"*"chmod"*) ok "the refusal names the key and the fix" ;; *) fail "$out" ;; esac

out=$(as_unit $exec_pre 2>"$work/pre.err")
expect_eq "$(printf '%s\n' "$out" | wc -l)" 1 "ExecStartPre (check --quiet) prints one line"
case "$out" in *"valid: gateway $gw"*"1 device"*) ok "the line summarizes the configuration" ;; *) fail "$out" ;; esac

# --- the daemon as the unit runs it -------------------------------------------------------------
sub() { # topic count seconds -> the messages
  timeout $(($3 + 5)) mosquitto_sub -h 127.0.0.1 -p "$port" --cafile "$work/pki/ca.crt" \
    --cert "$work/pki/client.crt" --key "$work/pki/client.key" -i "pkgtest-sub-$RANDOM" \
    -t "$1" -C "$2" -W "$3"
}
start_daemon() {
  "${as_unit_prefix[@]}" $exec_start >>"$work/daemon.log" 2>&1 &
  daemon_pid=$!
}
stop_daemon() {
  kill -TERM "$daemon_pid"
  local rc=0
  timeout 20 tail --pid="$daemon_pid" -f /dev/null || fail "the daemon did not stop within 20 s"
  wait "$daemon_pid" || rc=$?
  daemon_pid=""
  expect_eq "$rc" 0 "the daemon exits 0 on SIGTERM"
}
echo "== running the daemon as user vitalgate"
start_daemon
status=$(sub "vitalgate/v1/$gw/status" 1 30) || { cat "$work/daemon.log"; fail "no status message"; }
case "$status" in *'"state":"online"'*) ok "the gateway publishes its retained online status" ;;
  *) fail "status: $status" ;; esac
sub "vitalgate/v1/$gw/readings/p-001" 1 30 >/dev/null || { cat "$work/daemon.log"; fail "no readings"; }
ok "the gateway publishes readings"
expect_file_mode /var/lib/vitalgate/buffer.db vitalgate:vitalgate 600
# grep -c prints 0 and fails when nothing matches; the count is what is wanted.
connects() { grep -c "connected to broker" "$work/daemon.log" || true; }
expect_eq "$(connects)" 1 "one connection so far"

# --- certificate rotation by SIGHUP, as documented ---------------------------------------------
(
  cd "$work/pki"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >new.ext
  openssl req -newkey rsa:2048 -nodes -sha256 -keyout new.key -out new.csr -subj /CN=ward7-gw1 2>/dev/null
  openssl x509 -req -in new.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 20 -sha256 \
    -out new.crt -extfile new.ext 2>/dev/null
  install -m 0644 new.crt /etc/vitalgate/gateway.crt.new
  install -o root -g vitalgate -m 0640 new.key /etc/vitalgate/gateway.key.new
  mv /etc/vitalgate/gateway.crt.new /etc/vitalgate/gateway.crt
  mv /etc/vitalgate/gateway.key.new /etc/vitalgate/gateway.key
)
runuser -u vitalgate -- vitalgate check --config /etc/vitalgate/vitalgate.json >"$work/check2.txt" ||
  { cat "$work/check2.txt"; fail "check refuses the rotated files"; }
grep -q "^warning: *mqtt.tls.cert_file: /etc/vitalgate/gateway.crt: certificate CN=ward7-gw1 expires in" \
  "$work/check2.txt" || { cat "$work/check2.txt"; fail "no expiry warning for a 20-day certificate"; }
ok "check warns of a certificate that expires within 30 days (exit 0)"
kill -HUP "$daemon_pid"
reconnected() { [ "$(connects)" -ge 2 ]; }
wait_for 30 reconnected || { cat "$work/daemon.log"; fail "no reconnection after SIGHUP"; }
ok "SIGHUP re-reads the rotated certificate as user vitalgate and reconnects"
grep -q "reload: .*expires in" "$work/daemon.log" || fail "the daemon does not log the expiry warning"
ok "the daemon logs the expiry warning on reload"

# --- backup while running, restore while stopped ------------------------------------------------
install -d -o vitalgate -g vitalgate -m 0700 /var/backups/vitalgate
runuser -u vitalgate -- sqlite3 /var/lib/vitalgate/buffer.db ".backup /var/backups/vitalgate/buffer.db"
tables=$(runuser -u vitalgate -- sqlite3 -readonly /var/backups/vitalgate/buffer.db "select count(*) from sqlite_master where type='table'")
[ "$tables" -gt 0 ] || fail "the backup holds no tables"
ok "sqlite3 .backup as user vitalgate copies the running outbox"
stop_daemon
rm -f /var/lib/vitalgate/buffer.db-wal /var/lib/vitalgate/buffer.db-shm
install -o vitalgate -g vitalgate -m 0600 /var/backups/vitalgate/buffer.db /var/lib/vitalgate/buffer.db
expect_file_mode /var/lib/vitalgate/buffer.db vitalgate:vitalgate 600

# --- upgrade over itself ------------------------------------------------------------------------
echo "== upgrading to a newer version of the same package"
new_version="$version+pkgtest1"
rm -rf "$work/repack" && dpkg-deb -R "$deb" "$work/repack"
sed -i "s/^Version: .*/Version: $new_version/" "$work/repack/DEBIAN/control"
# The new version ships a changed default configuration, as a real upgrade may.
sed -i 's/"site": ""/"site": "changed default"/' "$work/repack/etc/vitalgate/vitalgate.json"
(cd "$work/repack" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' |
  xargs -0 md5sum >DEBIAN/md5sums)
dpkg-deb --root-owner-group -b "$work/repack" "$work/upgrade.deb" >/dev/null
db_inode=$(stat -c %i /var/lib/vitalgate/buffer.db)
# As docs/operations.md shows for unattended upgrades.
apt_get -o Dpkg::Options::=--force-confold install "$work/upgrade.deb" >"$work/upgrade.log" 2>&1 ||
  { cat "$work/upgrade.log"; fail "upgrade failed"; }
expect_eq "$(dpkg-query -W -f='${Version}' vitalgate)" "$new_version" "the upgrade is installed"
expect_eq "$(sha256sum /etc/vitalgate/vitalgate.json | cut -d' ' -f1)" "$config_sum" \
  "the administrator's configuration is kept"
grep -q "changed default" /etc/vitalgate/vitalgate.json.dpkg-dist || fail "no vitalgate.json.dpkg-dist"
ok "the new default is beside it as vitalgate.json.dpkg-dist"
expect_eq "$(stat -c %i /var/lib/vitalgate/buffer.db)" "$db_inode" "the outbox is kept"
expect_file_mode /etc/vitalgate root:vitalgate 750
expect_file_mode /etc/vitalgate/gateway.key root:vitalgate 640
expect_file_mode /var/lib/vitalgate vitalgate:vitalgate 700

echo "== running the upgraded package on the restored outbox"
: >"$work/daemon.log"
out=$(as_unit $exec_pre 2>&1) || fail "ExecStartPre after the upgrade: $out"
start_daemon
status=$(sub "vitalgate/v1/$gw/readings/p-001" 1 30) || { cat "$work/daemon.log"; fail "no readings after upgrade"; }
ok "the upgraded gateway publishes"
stop_daemon

# --- remove, purge ------------------------------------------------------------------------------
apt_get remove vitalgate >"$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "remove failed"; }
[ ! -e /usr/bin/vitalgate ] || fail "remove left /usr/bin/vitalgate"
[ -f /var/lib/vitalgate/buffer.db ] || fail "remove deleted the outbox"
[ -f /etc/vitalgate/vitalgate.json ] || fail "remove deleted the configuration"
ok "remove keeps the configuration and the outbox"
apt_get purge vitalgate >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "purge failed"; }
[ ! -e /var/lib/vitalgate ] || fail "purge left /var/lib/vitalgate"
[ ! -e /etc/vitalgate/vitalgate.json ] || fail "purge left the configuration"
dpkg-statoverride --list /etc/vitalgate >/dev/null && fail "purge left the statoverride"
[ -f /etc/vitalgate/gateway.key ] || fail "purge deleted the administrator's key"
ok "purge deletes the outbox and the configuration, and keeps the administrator's keys"

echo "package: $passed passed, 0 failed"
