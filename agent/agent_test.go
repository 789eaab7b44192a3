package agent

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hallrate/hallrate/buffer"
	"github.com/hallrate/hallrate/device"
	"github.com/hallrate/hallrate/internal/quantile"
	"github.com/hallrate/hallrate/record"
	"github.com/hallrate/hallrate/sysclock"
	"github.com/hallrate/hallrate/uplink"
)

// chanSource is a device.Source fed by the test.
type chanSource chan device.Press

func (c chanSource) Run(ctx context.Context, out chan<- device.Press) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-c:
			out <- p
		}
	}
}

// events records feedback calls and lets the test wait for them.
type events struct {
	mu     sync.Mutex
	calls  []string
	notify chan struct{}
}

func newEvents() *events { return &events{notify: make(chan struct{}, 100)} }

func (e *events) add(s string) {
	e.mu.Lock()
	e.calls = append(e.calls, s)
	e.mu.Unlock()
	e.notify <- struct{}{}
}

func (e *events) Recorded(int)      { e.add("recorded") }
func (e *events) Failed(int)        { e.add("failed") }
func (e *events) RatingWindow(bool) {}
func (e *events) AskReason(bool)    {}
func (e *events) Online(bool)       {}
func (e *events) waitN(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		e.mu.Lock()
		c := append([]string(nil), e.calls...)
		e.mu.Unlock()
		if len(c) >= n {
			return c
		}
		select {
		case <-e.notify:
		case <-deadline:
			t.Fatalf("waited for %d feedback events, have %v", n, c)
		}
	}
}

var buttons = []Button{{"very_satisfied", 5}, {"satisfied", 4}, {"basic", 3}, {"dissatisfied", 2}}

func newAgent(t testing.TB, o buffer.Outbox, src device.Source, fb device.Feedback, max int64) *Agent {
	t.Helper()
	a, err := New(Config{
		Device: "w05-a", Hall: "h1", Counter: "W05", Version: "test", Buttons: buttons,
		RatingWindow: 30 * time.Second, MaxRecords: max,
		// Port 1 on loopback refuses: the uplink stays offline.
		Uplink: uplink.Config{Broker: "tcp://127.0.0.1:1", ClientID: "t", Topics: uplink.CounterTopics("p", "h1", "W05")},
	}, Parts{Outbox: o, Source: src, Feedback: fb, Clock: sysclock.NewFake(time.Now(), "boot")})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func run(t *testing.T, a *Agent) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
}

func TestOutboxFullIsAnAlarmNotADrop(t *testing.T) {
	o, _ := buffer.NewMemory()
	src, fb := make(chanSource), newEvents()
	a := newAgent(t, o, src, fb, 3)
	stop := run(t, a)
	defer stop()
	for i := 0; i < 5; i++ {
		src <- device.Press{Button: 1, At: time.Now()}
	}
	fb.waitN(t, 5)
	if o.Len() != 5 || !a.OutboxFull() {
		t.Fatalf("len %d full %v: every press must be kept and the alarm raised", o.Len(), a.OutboxFull())
	}
	var st record.Status
	if err := json.Unmarshal(a.status(true), &st); err != nil || st.OutboxFull == nil || !*st.OutboxFull || *st.Pending != 5 {
		t.Fatalf("status %+v %v", st, err)
	}
}

// failing is an outbox whose writes fail, like a full disk.
type failing struct{ *buffer.Memory }

func (failing) Append(buffer.BuildFunc, []byte) (uint64, error) {
	return 0, errors.New("write outbox.db: no space left on device")
}

func TestWriteFailureShownAndCounted(t *testing.T) {
	m, _ := buffer.NewMemory()
	src, fb := make(chanSource), newEvents()
	a := newAgent(t, failing{m}, src, fb, 100)
	stop := run(t, a)
	defer stop()
	src <- device.Press{Button: 2, At: time.Now()}
	src <- device.Press{Button: 2, At: time.Now()}
	if got := fb.waitN(t, 2); got[0] != "failed" || got[1] != "failed" {
		t.Fatalf("feedback %v", got)
	}
	if c := a.Counters(); c.WriteFailures != 2 || len(c.Presses) != 0 {
		t.Fatalf("counters %+v", c)
	}
}

// BenchmarkPressToDurable measures a press from the input channel's view
// to its record committed and fsynced in a bbolt outbox: binding decision,
// JSON encoding and the commit.
func BenchmarkPressToDurable(b *testing.B) {
	o, err := buffer.Open(filepath.Join(b.TempDir(), "outbox.db"), buffer.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	a := newAgent(b, o, make(chanSource), device.NoFeedback{}, 1<<40)
	a.binding.ApplyTicket(record.Ticket{V: 1, Ticket: "A023", State: record.Serving, Staff: "S017", Item: "business licence"})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		a.press(device.Press{Button: i%4 + 1, At: start})
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(quantile.Micros(quantile.Of(lat, 0.5)), "p50-µs")
	b.ReportMetric(quantile.Micros(quantile.Of(lat, 0.99)), "p99-µs")
	if o.LastSeq() != uint64(b.N) {
		b.Fatalf("recorded %d of %d", o.LastSeq(), b.N)
	}
}

// A ticket whose fields break the rules of every door is refused whole: the
// agent never signs such a field into a record, and the ticket before it
// stays current.
func TestTicketBreakingTheRulesRefused(t *testing.T) {
	o, _ := buffer.NewMemory()
	a := newAgent(t, o, make(chanSource), newEvents(), 100)
	a.applyTicket([]byte(`{"v":1,"ticket":"A1","state":"serving","staff":"S017"}`))
	for _, p := range []string{
		`{"v":1,"ticket":"A2","state":"serving","staff":"S\u0000017"}`,
		"{\"v\":1,\"ticket\":\"A2\",\"state\":\"serving\",\"staff\":\"S\xff\"}",
		`{"v":1,"ticket":"A2","state":"serving","item":"x\nlevel=ERROR msg=forged"}`,
	} {
		a.applyTicket([]byte(p))
	}
	if got := a.Counters().TicketsRejected; got != 3 {
		t.Errorf("tickets rejected: %d, want 3", got)
	}
	if cur := a.binding.Current(); cur == nil || cur.ID != "A1" || cur.Staff != "S017" {
		t.Errorf("current ticket %+v, want A1 of S017", cur)
	}
}
