// Package e2e runs the real hallrate-agent binary against real brokers on
// loopback and asserts on what a subscriber received.
package e2e

import (
	"bufio"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hallrate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "hallrate-agent")
	// Built as a release is (Makefile): static, no cgo, so that memory
	// and speed figures are those of the binary a terminal runs.
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", agentBin, "github.com/hallrate/hallrate/cmd/hallrate-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build agent:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	hall    = "h1"
	counter = "W05"
	prefix  = "hallrate/v1"
)

var topics = struct{ rating, status, ticket string }{
	prefix + "/" + hall + "/" + counter + "/rating",
	prefix + "/" + hall + "/" + counter + "/status",
	prefix + "/" + hall + "/" + counter + "/ticket",
}

// writeConfig writes an agent config for a sim device and returns its path.
func writeConfig(t testing.TB, dir, id, broker, extra string) string {
	t.Helper()
	path := filepath.Join(dir, "agent.toml")
	conf := fmt.Sprintf(`[device]
id = %q
hall = %q
counter = %q
driver = "sim"

[mqtt]
broker = %q
topic_prefix = %q
keepalive = "2s"

[buffer]
path = %q
max_records = 100000

[binding]
rating_window = "30s"
%s`, id, hall, counter, broker, prefix, filepath.Join(dir, "outbox.db"), extra)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// agentProc is a running hallrate-agent in sim mode.
type agentProc struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}

	mu      sync.Mutex
	lines   []string
	changed chan struct{}
}

func startAgent(t testing.TB, configPath string) *agentProc {
	t.Helper()
	return startAgentIn(t, nil, configPath)
}

// startAgentIn runs the agent under a command prefix, such as
// "ip netns exec NS" (which execs it, so the pid is the agent's).
func startAgentIn(t testing.TB, prefix []string, configPath string) *agentProc {
	t.Helper()
	args := append(append([]string(nil), prefix...), agentBin, "run", "--config", configPath)
	cmd := exec.Command(args[0], args[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{t: t, cmd: cmd, stdin: stdin, done: make(chan struct{}), changed: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			a.mu.Lock()
			a.lines = append(a.lines, sc.Text())
			close(a.changed)
			a.changed = make(chan struct{})
			a.mu.Unlock()
		}
		_ = cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() { a.kill() })
	return a
}

// press types button numbers on the agent's standard input.
func (a *agentProc) press(buttons ...int) {
	a.t.Helper()
	var b strings.Builder
	for _, n := range buttons {
		fmt.Fprintf(&b, "%d\n", n)
	}
	if _, err := io.WriteString(a.stdin, b.String()); err != nil {
		a.t.Fatalf("press: %v", err)
	}
}

// count returns how many log lines contain all of the given parts.
func (a *agentProc) count(parts ...string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
next:
	for _, l := range a.lines {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		n++
	}
	return n
}

// waitLog waits until at least n log lines contain all parts.
func (a *agentProc) waitLog(n int, timeout time.Duration, parts ...string) {
	a.t.Helper()
	deadline := time.After(timeout)
	for {
		a.mu.Lock()
		changed := a.changed
		a.mu.Unlock()
		if a.count(parts...) >= n {
			return
		}
		select {
		case <-changed:
		case <-a.done:
			if a.count(parts...) >= n {
				return
			}
			a.t.Fatalf("agent exited while waiting for %d lines with %q:\n%s", n, parts, a.log())
		case <-deadline:
			a.t.Fatalf("timed out waiting for %d log lines with %q (have %d):\n%s", n, parts, a.count(parts...), a.log())
		}
	}
}

// waitOutcomes waits until n presses were either recorded or refused.
func (a *agentProc) waitOutcomes(n int, timeout time.Duration) {
	a.t.Helper()
	deadline := time.After(timeout)
	for {
		a.mu.Lock()
		changed := a.changed
		a.mu.Unlock()
		if a.count("msg=press ")+a.count("press NOT recorded") >= n {
			return
		}
		select {
		case <-changed:
		case <-a.done:
			a.t.Fatalf("agent exited:\n%s", a.log())
		case <-deadline:
			a.t.Fatalf("timed out waiting for %d press outcomes:\n%s", n, a.log())
		}
	}
}

// waitDurable waits until n presses have been recorded in the outbox.
func (a *agentProc) waitDurable(n int, timeout time.Duration) {
	a.t.Helper()
	a.waitLog(n, timeout, "msg=press ")
}

func (a *agentProc) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := strings.Join(a.lines, "\n")
	if len(s) > 8000 {
		s = "...\n" + s[len(s)-8000:]
	}
	return s
}

// logWithout returns the log lines that do not contain skip.
func (a *agentProc) logWithout(skip string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var keep []string
	for _, l := range a.lines {
		if !strings.Contains(l, skip) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// kill ends the agent with SIGKILL and waits for it.
func (a *agentProc) kill() {
	if a.cmd.Process != nil {
		_ = a.cmd.Process.Kill()
	}
	<-a.done
}

// stop sends SIGTERM and waits for a clean exit.
func (a *agentProc) stop() {
	a.t.Helper()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		a.t.Fatalf("agent did not stop within 15s of SIGTERM:\n%s", a.log())
	}
	if code := a.cmd.ProcessState.ExitCode(); code != 0 {
		a.t.Fatalf("agent exited with %d after SIGTERM:\n%s", code, a.log())
	}
}

// presses decodes the rating records among msgs.
func presses(t *testing.T, msgs []mqtttest.Message) []record.Press {
	t.Helper()
	var out []record.Press
	for _, m := range msgs {
		if !strings.HasSuffix(m.Topic, "/rating") {
			continue
		}
		p, err := record.DecodePress(m.Payload)
		if err != nil {
			t.Fatalf("subscriber got an invalid record: %v: %s", err, m.Payload)
		}
		out = append(out, p)
	}
	return out
}

// distinct returns the records in first-received order with duplicates
// (same id) removed, failing the test if a duplicate differs.
func distinct(t *testing.T, ps []record.Press) []record.Press {
	t.Helper()
	seen := map[string]record.Press{}
	var out []record.Press
	for _, p := range ps {
		if q, ok := seen[p.ID]; ok {
			a, _ := json.Marshal(p)
			b, _ := json.Marshal(q)
			if string(a) != string(b) {
				t.Fatalf("two different records with id %s:\n%s\n%s", p.ID, a, b)
			}
			continue
		}
		seen[p.ID] = p
		out = append(out, p)
	}
	return out
}

// countDistinct is a Wait condition: at least n distinct records.
func countDistinct(n int) func([]mqtttest.Message) bool {
	return func(msgs []mqtttest.Message) bool {
		ids := map[string]bool{}
		for _, m := range msgs {
			if !strings.HasSuffix(m.Topic, "/rating") {
				continue
			}
			var p struct{ ID string }
			if json.Unmarshal(m.Payload, &p) == nil {
				ids[p.ID] = true
			}
		}
		return len(ids) >= n
	}
}

// assertComplete checks that the distinct records are exactly seq 1..n of
// one epoch, first received in seq order.
func assertComplete(t *testing.T, msgs []mqtttest.Message, n int) []record.Press {
	t.Helper()
	d := distinct(t, presses(t, msgs))
	if len(d) != n {
		t.Fatalf("received %d distinct records, want %d", len(d), n)
	}
	for i, p := range d {
		if p.Seq != uint64(i+1) || p.Epoch != d[0].Epoch {
			t.Fatalf("record %d is %s: want seq %d of epoch %s, in order", i, p.ID, i+1, d[0].Epoch)
		}
		want := ""
		if i > 0 {
			want = d[i-1].ChainHash()
		}
		if p.Prev != want || p.Sig == "" {
			t.Fatalf("record %s: prev %q, want %q; sig %q", p.ID, p.Prev, want, p.Sig)
		}
	}
	return d
}

func ticketJSON(id string, state record.TicketState) []byte {
	b, _ := json.Marshal(record.Ticket{V: 1, Ticket: id, State: state, Staff: "S017", Item: "business licence",
		At: "2026-11-24T09:15:00+08:00"})
	return b
}

// runAgent runs the agent to completion and returns its combined output.
func runAgent(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(agentBin, args...).CombinedOutput()
	return string(out), err
}

// devicePubKey asks the agent for the key that signs its records.
func devicePubKey(t *testing.T, configPath string) ed25519.PublicKey {
	t.Helper()
	out, err := runAgent(t, "pubkey", "--config", configPath)
	if err != nil {
		t.Fatalf("pubkey: %v: %s", err, out)
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("pubkey printed %q", out)
	}
	pub, err := record.DecodePublicKey(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return pub
}
