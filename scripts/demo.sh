#!/usr/bin/env bash
# A whole hall on one machine: the collector runs an embedded broker and
# plays the queue system, and a simulated terminal reads presses from the
# keyboard. Everything lives in a temporary directory; Ctrl-C ends it
# (exit status 0) and says where that directory is.
#
# DEMO_PORT (default 18830) is the embedded broker's port and
# DEMO_HTTP_PORT (default 18831) the dashboard's.
set -euo pipefail
bin=${BIN:-bin}
port=${DEMO_PORT:-18830}
http=${DEMO_HTTP_PORT:-18831}
dir=$(mktemp -d -t hallrate-demo-XXXXXX)

# On a terminal, job control gives the keyboard's terminal (W01's agent)
# a process group of its own: Ctrl-C then stops that agent only, and this
# script (and make, which runs it) ends the rest and exits 0.
if [ -t 0 ]; then set -m; fi

# Four counters, W01 to W04: W01 is the terminal you type on; W02 and W03
# are pressed by a short random loop that stops by itself; W04 has no queue
# system: its staff member presses the 请评价 key ("i") before each rating.
for n in 1 2 3 4; do
	mkdir -p "$dir/w0$n"
	cat >"$dir/w0$n/agent.toml" <<CONF
[device]
id      = "w0$n-a"
hall    = "h1"
counter = "W0$n"
driver  = "sim"

[mqtt]
broker = "tcp://127.0.0.1:$port"

[buffer]
path = "$dir/w0$n/outbox.db"

[binding]
rating_window = "15s"

[log]
level = "warn"
CONF
done

# W01 speaks its prompts (made by "make voice") where this machine has a
# sound card; without one it says so once in its log and stays silent.
voice=$(cd "${VOICE_DIR:-dist/voice/zh}" 2>/dev/null && pwd || echo "$PWD/dist/voice/zh")
cat >>"$dir/w01/agent.toml" <<CONF

[voice]
enabled = true
dir     = "$voice"
CONF

# The hall's trusted keys file: every terminal's key (made now) with its
# hall and counter, so that the collector verifies every demo record.
for conf in "$dir"/w*/agent.toml; do
	read -r id key < <("$bin/hallrate-agent" pubkey --config "$conf")
	counter=$(sed -n 's/^counter *= *"\(.*\)"/\1/p' "$conf")
	echo "$id h1 $counter $key"
done >"$dir/devices"
cat >"$dir/collector.toml" <<CONF
[trust]
keys_file = "$dir/devices"

[demo]
skip_counters = ["W04"]   # run by the staff key alone: no demonstration tickets
CONF

"$bin/hallrate-collector" run --config "$dir/collector.toml" --embedded-broker "127.0.0.1:$port" --demo-tickets \
	--demo-serving 20s --demo-done 15s --demo-idle 3s \
	--listen "127.0.0.1:$http" --store "sqlite://$dir/collector.db" \
	--out "$dir/records.jsonl" 2>"$dir/collector.log" &
collector=$!
pids=()
pressers=()
cleanup() {
	set +e
	for p in "${pressers[@]}"; do pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
	kill "${pids[@]}" "$collector" 2>/dev/null
	wait "${pids[@]}" "${pressers[@]}" "$collector" 2>/dev/null
	echo
	echo "demo files kept in $dir (collector.log, records.jsonl, collector.db, devices)"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

for _ in $(seq 50); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done

# W02 and W03: a press every few seconds for about six minutes, then quiet.
for n in 2 3; do
	mkfifo "$dir/w0$n/presses"
	"$bin/hallrate-agent" run --config "$dir/w0$n/agent.toml" <"$dir/w0$n/presses" >/dev/null 2>>"$dir/w0$n/agent.log" &
	pids+=($!)
	(
		for _ in $(seq 30); do
			sleep $((6 + RANDOM % 12))
			echo $((1 + (RANDOM % 10 < 6 ? 0 : RANDOM % 4)))
		done
		sleep 86400 # keep the pipe open: the agent reads on
	) >"$dir/w0$n/presses" &
	pressers+=($!)
done

# W04: the staff key opens the rating window, then the citizen presses.
mkfifo "$dir/w04/presses"
"$bin/hallrate-agent" run --config "$dir/w04/agent.toml" <"$dir/w04/presses" >/dev/null 2>>"$dir/w04/agent.log" &
pids+=($!)
(
	for _ in $(seq 20); do
		sleep $((8 + RANDOM % 10))
		echo i
		sleep 2
		echo $((1 + (RANDOM % 10 < 7 ? 0 : RANDOM % 4)))
	done
	sleep 86400
) >"$dir/w04/presses" &
pressers+=($!)

cat <<TEXT
hallrate demo: counters W01-W04 of hall h1, broker on 127.0.0.1:$port.
Dashboard: http://127.0.0.1:$http/  (English: http://127.0.0.1:$http/?lang=en,
monthly report: http://127.0.0.1:$http/report). W02 and W03 are pressed at
random for about six minutes; W04 has no queue system: its staff key opens
each rating window; you press for W01.
The collector calls a ticket to the counter every ~40 s (serving 20 s, then a
15 s rating window). Type a button number and Enter:
  1 非常满意 very satisfied   2 满意 satisfied   3 基本满意 basic   4 不满意 dissatisfied
After a 4, a press within 10 s gives the reason: 1 服务态度 2 办事效率 3 办事流程与材料 4 其他.
Each press is printed below as the collector stores it. Ctrl-C ends.
Logs: $dir/collector.log and the agent's warnings on this terminal.
TEXT
"$bin/hallrate-agent" run --config "$dir/w01/agent.toml" || true
exit 0
