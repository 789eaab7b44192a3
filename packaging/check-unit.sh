#!/usr/bin/env bash
# check-unit.sh [BINARY]: checks the agent's systemd files as CI does:
# "systemd-analyze verify" clean, the offline security exposure at most
# 2.5, and the sysusers and tmpfiles files applied to a scratch root.
# BINARY (default bin/hallrate-agent, "make build") stands in for
# /usr/bin/hallrate-agent, which verify wants to exist.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-bin/hallrate-agent}")
max=2.5
fail() { echo "check-unit: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze not installed (apt-get install systemd)"
[ -x "$bin" ] || fail "$bin: no agent binary (make build)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

unit="$work/hallrate-agent.service"
sed "s|/usr/bin/hallrate-agent|$bin|" systemd/hallrate-agent.service >"$unit"
echo "== systemd-analyze verify"
out=$(systemd-analyze verify --man=no "$unit" 2>&1) || fail "verify failed:
$out"
[ -z "$out" ] || fail "verify is not clean:
$out"

echo "== systemd-analyze security --offline=true"
report=$(systemd-analyze security --offline=true --no-pager systemd/hallrate-agent.service 2>&1) || true
score=$(sed -n 's/.*Overall exposure level for hallrate-agent.service: \([0-9.]*\).*/\1/p' <<<"$report")
[ -n "$score" ] || fail "no exposure score in:
$report"
grep '✗' <<<"$report" || true
echo "exposure $score (at most $max)"
awk -v s="$score" -v m="$max" 'BEGIN {exit !(s <= m)}' || fail "exposure $score is above $max"

for k in Type=notify WatchdogSec= Restart=on-failure StateDirectory=hallrate User=hallrate \
	SupplementaryGroups=gpio DevicePolicy=closed 'DeviceAllow=char-gpiochip rw'; do
	grep -q "^$k" systemd/hallrate-agent.service || fail "the unit lacks $k"
done
[ "$(grep -c '^DeviceAllow=' systemd/hallrate-agent.service)" = 1 ] || fail "the unit allows devices besides the gpiochips"

echo "== sysusers and tmpfiles on a scratch root"
root="$work/root"
mkdir -p "$root/etc" "$root/var/lib"
systemd-sysusers --root="$root" - <systemd/hallrate-agent.sysusers.conf
grep -q '^hallrate:x:[0-9]*:[0-9]*:.*:/var/lib/hallrate:/usr/sbin/nologin$' "$root/etc/passwd" || fail "no hallrate user"
grep -q '^gpio:x:[0-9]*:hallrate$' "$root/etc/group" || fail "hallrate is not in group gpio"
systemd-tmpfiles --root="$root" --create - <systemd/hallrate-agent.tmpfiles.conf
[ "$(stat -c %a "$root/var/lib/hallrate")" = 750 ] || fail "/var/lib/hallrate is not 0750"
[ -d "$root/etc/hallrate" ] || fail "no /etc/hallrate"
grep -q '^SUBSYSTEM=="gpio", KERNEL=="gpiochip\*", GROUP="gpio", MODE="0660"$' systemd/60-hallrate-gpio.rules || fail "udev rule changed"
echo "check-unit: good"
