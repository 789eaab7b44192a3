#!/usr/bin/env bash
# check-deb.sh DIR: checks the hallrate-agent .deb packages in DIR (as built
# by "make deb"): one per architecture, each with the right architecture
# field, files, conffile and maintainer scripts, and a binary for that CPU
# that runs (under qemu-user for arm, when installed; armhf on an ARMv6
# CPU, the Pi Zero's).
set -euo pipefail
dir=${1:-dist}
fail() { echo "check-deb: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || fail "dpkg-deb not installed (apt-get install dpkg)"

# Debian arch, ELF e_machine (hex), qemu runner and CPU
targets=(
	"amd64 3e - -"
	"arm64 b7 qemu-aarch64-static -"
	"armhf 28 qemu-arm-static arm1176"
)
want_files=(
	"-rwxr-xr-x ./usr/bin/hallrate-agent"
	"-rw-r--r-- ./lib/systemd/system/hallrate-agent.service"
	"-rw-r--r-- ./usr/lib/sysusers.d/hallrate-agent.conf"
	"-rw-r--r-- ./usr/lib/tmpfiles.d/hallrate-agent.conf"
	"-rw-r--r-- ./usr/lib/udev/rules.d/60-hallrate-gpio.rules"
	"-rw-r--r-- ./etc/hallrate/agent.toml"
	"-rw-r--r-- ./usr/share/doc/hallrate-agent/operations.md"
)
# The voice prompts, each with its text.
for p in invite thanks already reason error; do
	want_files+=("-rw-r--r-- ./usr/share/hallrate/voice/zh/$p.wav" "-rw-r--r-- ./usr/share/hallrate/voice/zh/$p.txt")
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for t in "${targets[@]}"; do
	read -r arch machine qemu cpu <<<"$t"
	debs=("$dir"/hallrate-agent_*_"$arch".deb)
	[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "want one hallrate-agent_*_$arch.deb in $dir, have: ${debs[*]}"
	deb=${debs[0]}
	echo "== $deb ($(stat -c %s "$deb") bytes)"

	[ "$(dpkg-deb -f "$deb" Package)" = hallrate-agent ] || fail "$deb: Package is not hallrate-agent"
	[ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] || fail "$deb: Architecture is $(dpkg-deb -f "$deb" Architecture), want $arch"
	dpkg-deb -I "$deb" >/dev/null
	dpkg-deb -f "$deb" Recommends | grep -qw alsa-utils || fail "$deb: does not recommend alsa-utils (aplay plays the voice prompts)"

	listing=$(dpkg-deb -c "$deb" | awk '{print $1, $6}')
	for f in "${want_files[@]}"; do
		grep -qxF -- "$f" <<<"$listing" || fail "$deb: lacks '$f'; has:
$listing"
	done
	# The binary's owner must be root; nothing else may be setuid.
	dpkg-deb -c "$deb" | awk '$2 != "root/root" {print; bad=1} END {exit bad}' || fail "$deb: files not owned by root"
	dpkg-deb -c "$deb" | awk '$1 ~ /s/ {print; bad=1} END {exit bad}' || fail "$deb: setuid or setgid files"

	ctl="$work/$arch/DEBIAN"
	mkdir -p "$work/$arch"
	dpkg-deb -e "$deb" "$ctl"
	grep -qx /etc/hallrate/agent.toml "$ctl/conffiles" || fail "$deb: /etc/hallrate/agent.toml is not a conffile"
	for s in postinst prerm postrm; do
		[ -x "$ctl/$s" ] || fail "$deb: no executable $s"
		sh -n "$ctl/$s" || fail "$deb: $s does not parse"
	done
	grep -q 'systemd-sysusers hallrate-agent.conf' "$ctl/postinst" || fail "$deb: postinst does not run systemd-sysusers"
	grep -q 'systemctl daemon-reload' "$ctl/postinst" || fail "$deb: postinst does not reload systemd"
	# A fresh install must not start (or enable) an agent that has no identity.
	if grep -Eq 'systemctl +(start|enable|restart|reload-or-restart)|--now' "$ctl/postinst"; then
		fail "$deb: postinst starts or enables the agent"
	fi

	root="$work/$arch/root"
	dpkg-deb -x "$deb" "$root"
	bin="$root/usr/bin/hallrate-agent"
	got=$(od -An -tx1 -j18 -N1 "$bin" | tr -d ' ')
	[ "$got" = "$machine" ] || fail "$deb: binary's ELF machine is 0x$got, want 0x$machine"
	if [ "$qemu" = - ]; then
		run=("$bin")
	elif command -v "$qemu" >/dev/null; then
		run=("$qemu")
		[ "$cpu" = - ] || run+=(-cpu "$cpu")
		run+=("$bin")
	else
		echo "   ($qemu not installed: binary not run)"
		continue
	fi
	out=$("${run[@]}" version) || fail "$deb: the binary does not run: $out"
	[[ $out == "hallrate-agent "* ]] || fail "$deb: version printed $out"
	[ "$cpu" = - ] && echo "   runs: $out" || echo "   runs: $out (cpu $cpu)"
	# The packaged example must be what provision knows to replace.
	"${run[@]}" provision --config "$work/$arch/agent.toml" --id w05-a --hall h1 --counter W05 --broker tcp://127.0.0.1:1883 >/dev/null
	cp "$root/etc/hallrate/agent.toml" "$work/$arch/example.toml"
	"${run[@]}" provision --config "$work/$arch/example.toml" --id w05-a --hall h1 --counter W05 --broker tcp://127.0.0.1:1883 >/dev/null ||
		fail "$deb: provision does not replace the packaged example"
done
echo "check-deb: all packages good"
