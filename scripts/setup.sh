#!/usr/bin/env bash
# Installs every Debian package fedrec needs to build, test and fuzz.
# Idempotent: a quick no-op when everything is already installed.
# Works as root on a fresh Debian 12 machine (uses sudo otherwise).
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  clang libclang-rt-14-dev          # libFuzzer harnesses (FEDREC_FUZZ=ON)
  clang-format                      # the house format, checked by ctest
  libnng-dev libmbedtls-dev         # transport (nng, built with mbedTLS)
  libsodium-dev                     # all cryptography
  libprotobuf-c-dev protobuf-c-compiler  # wire format
  libopenblas-dev                   # BLAS and LAPACK
  libsqlite3-dev sqlite3            # coordinator state (sqlite3 CLI: integration test)
  openssl                           # test certificates for tls+tcp:// (test_daemon_ops)
  zlib1g-dev libcsv-dev libinih-dev # gzip'd logs, CSV, config files
  libcmocka-dev                     # tests
  python3                           # tests that parse the simulator's SVG and JSON; Python bindings
  python3-numpy python3-cryptography python3-pycryptodome  # bench/flower_secagg.py (Flower's SecAgg+; not in CI)
  libsystemd-dev systemd            # sd_notify (Type=notify unit); systemd-analyze verify (ctest)
  valgrind                          # memcheck run (hardening)
  strace                            # ctest store_open_no_sync: opening a store makes no sync call
  default-jdk-headless              # the JNI binding (bindings/java) and its ctest
  chromium                          # the status page rendered headless (test_daemon_life)
  openmpi-bin libopenmpi-dev        # fedrec-sim under mpirun (optional in CMake: FEDREC_MPI)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
