package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hallrate/hallrate/internal/cli"
	"github.com/hallrate/hallrate/internal/testenv"
	"github.com/hallrate/hallrate/record"
)

// output is a buffer a test can wait on.
type output struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.b.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return n, err
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitMatch waits until the output matches re and returns the submatches.
func (o *output) waitMatch(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(10 * time.Second)
	for {
		o.mu.Lock()
		m := rx.FindStringSubmatch(o.b.String())
		ch := o.changed
		o.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no output matching %q; got:\n%s", re, o.String())
		}
	}
}

// running is a collector run in-process.
type running struct {
	out, err *output
	cancel   context.CancelFunc
	done     chan error
}

func startCollector(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &running{out: newOutput(), err: newOutput(), cancel: cancel, done: make(chan error, 1)}
	args = withTestStore(t, args)
	go func() {
		c.done <- program().Dispatch(ctx, args, cli.IO{In: strings.NewReader(""), Out: c.out, Err: c.err})
	}()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// withTestStore adds a SQLite store and an HTTP listener on a free port
// unless args name them. The store lives next to the -out file when there
// is one, so that a restart with the same args finds it again.
func withTestStore(t *testing.T, args []string) []string {
	t.Helper()
	has := func(name string) (string, bool) {
		for i, a := range args {
			if (a == "-"+name || a == "--"+name) && i+1 < len(args) {
				return args[i+1], true
			}
		}
		return "", false
	}
	var extra []string
	if _, ok := has("store"); !ok {
		dir := t.TempDir()
		if out, ok := has("out"); ok {
			dir = filepath.Dir(out)
		}
		extra = append(extra, "-store", "sqlite://"+filepath.Join(dir, "collector.db"))
	}
	if _, ok := has("listen"); !ok {
		extra = append(extra, "-listen", "127.0.0.1:0")
	}
	if len(args) > 0 && args[0] == "run" {
		return append(append([]string{"run"}, extra...), args[1:]...)
	}
	return append(extra, args...)
}

// stop cancels the collector and waits for it; it may be called twice.
func (c *running) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	if c.done == nil {
		return
	}
	select {
	case err := <-c.done:
		if err != nil {
			t.Errorf("collector: %v\nstderr:\n%s", err, c.err.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("collector did not stop\nstderr:\n%s", c.err.String())
	}
	c.done = nil
}

// brokerAddr waits for the embedded broker and returns its address.
func (c *running) brokerAddr(t *testing.T) string {
	return c.err.waitMatch(t, `embedded broker listening" addr=(\S+)`)[1]
}

func client(t *testing.T, addr, id string) mqtt.Client {
	t.Helper()
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(true)
	c := mqtt.NewClient(opts)
	if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("connect %s: %v", addr, tk.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c mqtt.Client, topic string, payload []byte, retained bool) {
	t.Helper()
	tk := c.Publish(topic, 1, retained, payload)
	if !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tk.Error())
	}
}

func press(t *testing.T, counter, device, epoch string, seq uint64) []byte {
	t.Helper()
	b, err := json.Marshal(record.Press{
		V: 1, ID: record.PressID(device, epoch, seq), Device: device, Hall: "h1", Counter: counter,
		Epoch: epoch, Seq: seq, Button: 2, Label: "satisfied", Satisfaction: 4,
		Disposition: record.Counted,
		Ticket:      &record.TicketRef{ID: fmt.Sprintf("A%03d", seq), State: record.Done, Staff: "S017"},
		PressedAt:   time.Now().Format(record.TimeLayout), ClockSynced: true, BootID: "b", UptimeMS: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func status(t *testing.T, device, epoch string, lastSeq uint64) []byte {
	t.Helper()
	var pending int64
	b, err := json.Marshal(record.Status{V: 1, Online: true, Device: device, Epoch: epoch, LastSeq: &lastSeq, Pending: &pending})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func storedIDs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		p, err := record.DecodePress([]byte(l))
		if err != nil {
			t.Fatalf("stored line %q: %v", l, err)
		}
		ids = append(ids, p.ID)
	}
	return ids
}

const ratingTopic = "hallrate/v1/h1/W05/rating"

func TestCollectorStoresOnceAndReportsGaps(t *testing.T) {
	out := filepath.Join(t.TempDir(), "records.jsonl")
	c := startCollector(t, "run", "-embedded-broker", "127.0.0.1:0", "-out", out, "-summary-interval", "1h")
	addr := c.brokerAddr(t)
	c.err.waitMatch(t, `connected and subscribed`)
	pub := client(t, addr, "test-agent")

	for _, seq := range []uint64{1, 2, 2, 4} {
		publish(t, pub, ratingTopic, press(t, "W05", "w05-a", "e1", seq), false)
	}
	publish(t, pub, ratingTopic, []byte(`{"v":1,"id":"garbage"}`), false)
	publish(t, pub, "hallrate/v1/h1/W05/status", status(t, "w05-a", "e1", 5), true)

	c.out.waitMatch(t, `w05-a:e1:4\n`)
	c.out.waitMatch(t, `gap: w05-a epoch e1 seq 3\n`)
	c.err.waitMatch(t, `malformed message ignored`)
	// The late record fills the gap.
	publish(t, pub, ratingTopic, press(t, "W05", "w05-a", "e1", 3), false)
	c.out.waitMatch(t, `gap filled: w05-a epoch e1 seq 3\n`)
	c.stop(t)

	got := c.out.String()
	for _, id := range []string{"w05-a:e1:1", "w05-a:e1:2", "w05-a:e1:3", "w05-a:e1:4"} {
		if n := strings.Count(got, "counted    "+id+"\n"); n != 1 {
			t.Errorf("%s printed %d times", id, n)
		}
	}
	if !strings.Contains(got, "W05  A002 (S017)  满意 satisfied") {
		t.Errorf("no human line for A002 in:\n%s", got)
	}
	// The device says it delivered seq 5, which never came: the loss audit.
	if !regexp.MustCompile(`w05-a at h1/W05 online, reports epoch e1 last_seq 5 pending 0: MISSING seq 5 \(1\)`).MatchString(got) {
		t.Errorf("final audit lacks the missing seq 5:\n%s", got)
	}
	if ids := storedIDs(t, out); strings.Join(ids, " ") != "w05-a:e1:1 w05-a:e1:2 w05-a:e1:4 w05-a:e1:3" {
		t.Errorf("stored %v", ids)
	}

	// A restarted collector knows what it has.
	c = startCollector(t, "-embedded-broker", "127.0.0.1:0", "-out", out)
	addr = c.brokerAddr(t)
	c.err.waitMatch(t, `connected and subscribed`)
	pub = client(t, addr, "test-agent")
	publish(t, pub, ratingTopic, press(t, "W05", "w05-a", "e1", 2), false)
	publish(t, pub, ratingTopic, press(t, "W05", "w05-a", "e1", 5), false)
	c.out.waitMatch(t, `w05-a:e1:5\n`)
	c.stop(t)
	if strings.Contains(c.out.String(), "w05-a:e1:2\n") {
		t.Errorf("stored again after restart:\n%s", c.out.String())
	}
	if n := len(storedIDs(t, out)); n != 5 {
		t.Errorf("%d records stored, want 5", n)
	}
}

func TestCollectorDemoTickets(t *testing.T) {
	c := startCollector(t, "-embedded-broker", "127.0.0.1:0", "-demo-tickets",
		"-demo-serving", "100ms", "-demo-done", "100ms", "-demo-idle", "50ms")
	addr := c.brokerAddr(t)
	c.err.waitMatch(t, `connected and subscribed`)

	tickets := make(chan record.Ticket, 64)
	sub := client(t, addr, "test-terminal")
	tk := sub.Subscribe("hallrate/v1/h1/W07/ticket", 1, func(_ mqtt.Client, m mqtt.Message) {
		tk, err := record.DecodeTicket(m.Payload())
		if err != nil {
			t.Errorf("ticket %s: %v", m.Payload(), err)
			return
		}
		tickets <- tk
	})
	if !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatal(tk.Error())
	}
	publish(t, sub, "hallrate/v1/h1/W07/status", status(t, "w07-a", "e1", 0), true)

	want := []struct {
		state  record.TicketState
		ticket string
	}{{record.Serving, "A001"}, {record.Done, "A001"}, {record.Idle, ""}, {record.Serving, "A002"}}
	for _, w := range want {
		select {
		case got := <-tickets:
			if got.State != w.state || got.Ticket != w.ticket {
				t.Fatalf("ticket %+v, want %s %s", got, w.state, w.ticket)
			}
			if w.state != record.Idle && (got.Staff == "" || got.Item == "" || got.At == "") {
				t.Fatalf("ticket %+v lacks staff, item or at", got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s %s ticket", w.state, w.ticket)
		}
	}
}

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[mqtt]\nbrokr = \"tcp://x:1\"\n"), 0o600)
	badValue := filepath.Join(dir, "badvalue.toml")
	os.WriteFile(badValue, []byte("[hall]\ntimezone = \"Mars/Olympus\"\n"), 0o600)
	for _, tc := range []struct {
		args    []string
		wantErr error
		stderr  string
	}{
		{[]string{"version", "-h"}, errHelp, "Print the version of hallrate-collector."},
		{[]string{"run", "-h"}, errHelp, "-embedded-broker ADDR"},
		{[]string{"-h"}, errHelp, "verify     verify FILE"},
		{[]string{"nonsense"}, cli.ErrUsage, `unknown command "nonsense"`},
		{[]string{"-broker", "tcp://a:1", "-embedded-broker", "b:1"}, cli.ErrUsage, "exclude each other"},
	} {
		var out, errb bytes.Buffer
		err := program().Dispatch(context.Background(), tc.args, cli.IO{Out: &out, Err: &errb})
		if !errors.Is(err, tc.wantErr) || !strings.Contains(errb.String(), tc.stderr) {
			t.Errorf("%v: err %v, stderr %q; want %v and %q", tc.args, err, errb.String(), tc.wantErr, tc.stderr)
		}
	}
	for path, want := range map[string]string{
		bad:                           "config: mqtt.brokr: unknown key",
		badValue:                      `config: hall.timezone: "Mars/Olympus" is not a known time zone`,
		filepath.Join(dir, "missing"): "no such file",
	} {
		err := program().Dispatch(context.Background(), []string{"-config", path}, cli.IO{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}})
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("-config %s: %v, want one line with %q", path, err, want)
		}
	}
}

// TestMosquitto runs the collector against a real Mosquitto: through the
// shared subscription, and across a stop, during which the broker keeps the
// collector's persistent session.
func TestMosquitto(t *testing.T) {
	bin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		testenv.Missing(t, "HALLRATE_REQUIRE_MOSQUITTO", "mosquitto is not installed (apt-get install mosquitto)")
	}
	addr := startMosquitto(t, bin)
	out := filepath.Join(t.TempDir(), "records.jsonl")
	args := []string{"-broker", "tcp://" + addr, "-out", out}
	cfg := filepath.Join(t.TempDir(), "collector.toml")
	os.WriteFile(cfg, []byte("[mqtt]\nclient_id = \"collector-under-test\"\nshare_group = \"hallrate-collector\"\n"), 0o600)
	args = append(args, "-config", cfg)

	c := startCollector(t, args...)
	c.err.waitMatch(t, `connected and subscribed.*\$share/hallrate-collector/hallrate/v1/\+/\+/rating`)
	pub := client(t, addr, "test-agent")
	publish(t, pub, ratingTopic, press(t, "W05", "w05-a", "e1", 1), false)
	publish(t, pub, ratingTopic, press(t, "W05", "w05-a", "e1", 1), false)
	c.out.waitMatch(t, `w05-a:e1:1\n`)
	c.stop(t)

	// Published while the collector is away: the session keeps them.
	publish(t, pub, ratingTopic, press(t, "W05", "w05-a", "e1", 2), false)
	publish(t, pub, ratingTopic, press(t, "W05", "w05-a", "e1", 3), false)

	c = startCollector(t, args...)
	c.out.waitMatch(t, `w05-a:e1:3\n`)
	c.stop(t)
	if ids := storedIDs(t, out); strings.Join(ids, " ") != "w05-a:e1:1 w05-a:e1:2 w05-a:e1:3" {
		t.Errorf("stored %v", ids)
	}
}

func startMosquitto(t *testing.T, bin string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\npersistence false\n"), 0o600)
	cmd := exec.Command(bin, "-c", conf)
	var logb output
	logb.changed = make(chan struct{})
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto not listening on %s: %v\n%s", addr, err, logb.String())
		}
		time.Sleep(20 * time.Millisecond) // polling for a process to listen
	}
}

var errHelp = flagErrHelp()

func flagErrHelp() error { return flag.ErrHelp }
