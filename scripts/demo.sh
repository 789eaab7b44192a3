#!/usr/bin/env bash
# A whole hall on one machine: the collector runs an embedded broker and
# plays the queue system, and a simulated terminal reads presses from the
# keyboard. Everything lives in a temporary directory; Ctrl-C ends it.
set -euo pipefail
bin=${BIN:-bin}
port=${DEMO_PORT:-18830}
dir=$(mktemp -d -t hallrate-demo-XXXXXX)

cat >"$dir/agent.toml" <<CONF
[device]
id      = "w05-a"
hall    = "h1"
counter = "W05"
driver  = "sim"

[mqtt]
broker = "tcp://127.0.0.1:$port"

[buffer]
path = "$dir/outbox.db"

[binding]
rating_window = "15s"

[log]
level = "warn"
CONF

"$bin/hallrate-collector" run --embedded-broker "127.0.0.1:$port" --demo-tickets \
	--demo-serving 20s --demo-done 15s --demo-idle 3s \
	--out "$dir/records.jsonl" 2>"$dir/collector.log" &
collector=$!
trap 'kill $collector 2>/dev/null; wait $collector 2>/dev/null; echo; echo "demo files kept in $dir"' EXIT

for _ in $(seq 50); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done

cat <<TEXT
hallrate demo: counter W05 of hall h1, broker on 127.0.0.1:$port.
The collector calls a ticket to the counter every ~40 s (serving 20 s, then a
15 s rating window). Type a button number and Enter:
  1 非常满意 very satisfied   2 满意 satisfied   3 基本满意 basic   4 不满意 dissatisfied
Each press is printed below as the collector stores it. Ctrl-C ends.
Logs: $dir/collector.log and the agent's warnings on this terminal.
TEXT
"$bin/hallrate-agent" run --config "$dir/agent.toml" || true
