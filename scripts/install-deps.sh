#!/usr/bin/env bash
# Installs what vitalgate needs to build, test and run its demo, from Debian 12 packages only.
# Run as root (or with sudo available). Set VITALGATE_SKIP_INSTALL=1 to skip;
# VITALGATE_EXTRA_PACKAGES adds packages a script needs beyond these (e.g. lcov for coverage).
set -euo pipefail
[ "${VITALGATE_SKIP_INSTALL:-0}" = 1 ] && exit 0

packages=(
  build-essential cmake pkg-config ninja-build
  libboost-dev libmosquitto-dev libssl-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libsqlite3-dev libsystemd-dev libcrypt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
  debhelper dpkg-dev fakeroot lintian man-db
  mosquitto mosquitto-clients openssl sqlite3 dbus
  python3 python3-pytest python3-paho-mqtt python3-cryptography python3-dbus python3-gi python3-hl7
  systemd procps iproute2 e2fsprogs util-linux
  prometheus chromium  # promtool checks /metrics; a headless Chromium renders the status page
)
# Node.js and npm run the FHIR validator of the tests (tests/fhir); a Node.js that brings its
# own npm (e.g. from another repository) is kept as it is.
command -v npm >/dev/null || packages+=(nodejs npm)
read -r -a extra <<<"${VITALGATE_EXTRA_PACKAGES:-}"
packages+=("${extra[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "install-deps: all packages present"; exit 0; }

sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# policy-rc.d keeps the mosquitto package from starting a system broker during installation.
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
