#!/usr/bin/env bash
# `cmake --install` into a temporary prefix puts the unit in
# PREFIX/lib/systemd/system, the man pages in PREFIX/share/man/man1 and man8
# and the example configuration in PREFIX/share/doc/fedrec; the installed unit
# is Type=notify with the hardening options, its ExecStart names the binary
# the install put in PREFIX/bin (the prefix of `cmake --install --prefix`,
# not the one configured, and without DESTDIR in a staged install), and
# `systemd-analyze verify` accepts it as installed (no output, exit 0) and
# refuses a broken copy.
# Usage: systemd_unit_test.sh BUILD_DIR
set -euo pipefail
build="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$dir/usr" >"$dir/install.log" 2>&1 ||
  { cat "$dir/install.log" >&2; fail "cmake --install"; }
unit="$dir/usr/lib/systemd/system/fedrec-coordinator.service"
for f in "$unit" "$dir/usr/share/man/man8/fedrec-coordinator.8" \
  "$dir/usr/share/man/man1/fedrec-client.1" "$dir/usr/share/man/man1/fedrec-sim.1" \
  "$dir/usr/share/doc/fedrec/coordinator.ini" "$dir/usr/bin/fedrec-coordinator"; do
  [ -f "$f" ] || fail "not installed: ${f#"$dir"}"
done
for want in 'Type=notify' 'StateDirectory=fedrec' 'ProtectSystem=strict' 'NoNewPrivileges=yes' \
  'PrivateTmp=yes' "ExecStart=$dir/usr/bin/fedrec-coordinator --config /etc/fedrec/coordinator.ini" \
  "ExecStartPre=$dir/usr/bin/fedrec-coordinator --config /etc/fedrec/coordinator.ini --check-config"; do
  grep -qxF "$want" "$unit" || fail "unit lacks '$want'"
done

# a package build: DESTDIR stages the files, the unit names the final path
DESTDIR="$dir/stage" cmake --install "$build" --prefix /opt/fedrec-test >"$dir/install2.log" 2>&1 ||
  { cat "$dir/install2.log" >&2; fail "cmake --install with DESTDIR"; }
staged="$dir/stage/opt/fedrec-test/lib/systemd/system/fedrec-coordinator.service"
[ -f "$staged" ] || fail "not installed with DESTDIR: ${staged#"$dir"}"
grep -qxF "ExecStart=/opt/fedrec-test/bin/fedrec-coordinator --config /etc/fedrec/coordinator.ini" \
  "$staged" || fail "staged unit: $(grep '^ExecStart=' "$staged")"
# the first install's unit was not rewritten by the second
grep -qxF "ExecStart=$dir/usr/bin/fedrec-coordinator --config /etc/fedrec/coordinator.ini" "$unit" ||
  fail "the first install's unit changed: $(grep '^ExecStart=' "$unit")"

# the shipped configuration passes --check-config (TLS files aside: they
# come from systemd credentials at run time)
touch "$dir/cert.pem" "$dir/key.pem"
sed "s|/run/credentials/fedrec-coordinator.service|$dir|" \
  "$dir/usr/share/doc/fedrec/coordinator.ini" >"$dir/coordinator.ini"
"$dir/usr/bin/fedrec-coordinator" --config "$dir/coordinator.ini" --check-config >/dev/null ||
  fail "the example configuration does not pass --check-config"

# verify the unit as installed (its ExecStart must exist)
out=$(systemd-analyze verify --man=no "$unit" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
# the check sees mistakes: a bad Type= is reported
mkdir -p "$dir/units"
sed 's/^Type=notify/Type=notifyy/' "$unit" >"$dir/units/broken.service"
out=$(systemd-analyze verify --man=no "$dir/units/broken.service" 2>&1) || true
grep -q 'Failed to parse service type' <<<"$out" || fail "broken unit not reported: $out"
echo "systemd unit: installed and verified"
