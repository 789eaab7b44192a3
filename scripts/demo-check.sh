#!/usr/bin/env bash
# Drives `make demo` as a person would, in a tmux terminal: waits until the
# demo's terminals have delivered ratings, checks through the collector's
# API that every one of them verified against the keys file the demo wrote,
# then presses Ctrl-C and checks that the demo ends with exit status 0 and
# says where its files are. Needs tmux, curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
http=$(free_port)
session=hallrate-demo-check-$$
log=$(mktemp -t hallrate-demo-check-XXXXXX)
trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -f "$log"' EXIT

tmux new-session -d -s "$session" -x 160 -y 50 bash --norc
tmux send-keys -t "$session" "DEMO_PORT=$port DEMO_HTTP_PORT=$http make demo; echo MAKE_EXIT=\$?" Enter
pane() { tmux capture-pane -p -J -S -200 -t "$session"; }

# The random presses of W02 and W03 come every 6-18 s; the first build may
# take minutes.
ratings=""
for _ in $(seq 600); do
	ratings=$(curl -fsS "http://127.0.0.1:$http/api/v1/ratings" 2>/dev/null || true)
	n=$(printf '%s' "$ratings" | python3 -c 'import json,sys
try: print(len(json.load(sys.stdin)["ratings"]))
except Exception: print(0)')
	[ "$n" -ge 2 ] && break
	sleep 1
done
[ "${n:-0}" -ge 2 ] || { echo "demo-check: no ratings within 10 minutes"; pane; exit 1; }
printf '%s' "$ratings" | python3 -c 'import json,sys
rs=json.load(sys.stdin)["ratings"]
bad=[r["id"]+" "+r["trust"] for r in rs if r["trust"]!="verified"]
print("demo-check: %d ratings on /api/v1/ratings, %d not verified" % (len(rs), len(bad)))
sys.exit(1 if bad else 0)'

tmux send-keys -t "$session" C-c
for _ in $(seq 100); do
	pane | grep -q '^MAKE_EXIT=' && break
	sleep 0.2
done
out=$(pane)
status=$(printf '%s\n' "$out" | sed -n 's/^MAKE_EXIT=//p' | tail -1)
printf '%s\n' "$out" | grep -q 'demo files kept in ' || { echo "demo-check: no 'demo files kept in' line after Ctrl-C"; printf '%s\n' "$out" | tail -20; exit 1; }
[ "$status" = 0 ] || { echo "demo-check: make demo exited ${status:-?} after Ctrl-C, want 0"; printf '%s\n' "$out" | tail -20; exit 1; }
echo "demo-check: Ctrl-C ended make demo with exit status 0 and kept its files"
