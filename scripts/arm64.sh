#!/usr/bin/env bash
# ARM64: cross-compiles the client library (-DFEDREC_CLIENT_ONLY=ON) and its
# tests for aarch64 with Debian's cross toolchain, then runs the client test
# suite under qemu-user (ctest, through the toolchain file's emulator).
# Installs what is missing: the arm64 architecture in dpkg, the cross
# compiler, qemu-user, and the arm64 -dev packages of libsodium, nng (with
# mbedTLS), protobuf-c and cmocka. Needs root (or sudo) the first time.
# Usage: scripts/arm64.sh [BUILD_DIR]   (default build-arm64)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-arm64}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

packages=(
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
  libsodium-dev:arm64 libnng-dev:arm64 libmbedtls-dev:arm64
  libprotobuf-c-dev:arm64 libcmocka-dev:arm64
  protobuf-c-compiler cmake pkg-config file
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "arm64: installing ${missing[*]}"
  dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

start=$(date +%s)
cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
      -DFEDREC_CLIENT_ONLY=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFEDREC_WERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)"
built=$(date +%s)
file "$build"/libfedrec.so.*.*.* | grep -q 'ARM aarch64' || { echo "arm64: not an aarch64 build"; exit 1; }
echo "arm64: $(file -b "$build"/libfedrec.so.*.*.* | cut -d, -f1-2)"
# Under qemu-user: every client test, test_secagg (about 35 s of CPU
# emulated) and the fork + SIGKILL crash tests of test_store included (they
# hung until the toolchain file made qemu load one glibc; see there).
(cd "$build" && ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)" --timeout 900)
end=$(date +%s)
echo "arm64: build $((built - start)) s, client tests under qemu-aarch64 $((end - built)) s"
