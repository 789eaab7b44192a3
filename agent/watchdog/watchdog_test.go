package watchdog_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallrate/hallrate/agent"
	"github.com/hallrate/hallrate/agent/watchdog"
	"github.com/hallrate/hallrate/buffer"
	"github.com/hallrate/hallrate/device"
	"github.com/hallrate/hallrate/sysclock"
	"github.com/hallrate/hallrate/uplink"
	"github.com/jonboulle/clockwork"
)

func TestBeatPacing(t *testing.T) {
	var sent []string
	clock := clockwork.NewFakeClockAt(time.Unix(0, 0))
	w := watchdog.New(watchdog.Config{
		Notify:   func(s string) error { sent = append(sent, s); return nil },
		Interval: 10 * time.Second,
		Clock:    clock,
	})
	healthy := agent.Health{InputRunning: true, OutboxOK: true}
	sick := agent.Health{InputRunning: true, Problems: []string{"outbox: read probe: database not open"}}
	w.Beat(sick) // not ready yet: no READY while unhealthy
	w.Beat(healthy)
	clock.Advance(4 * time.Second)
	w.Beat(healthy) // less than half the interval: no ping
	clock.Advance(time.Second)
	w.Beat(healthy)
	clock.Advance(time.Minute)
	w.Beat(sick)
	want := []string{
		"STATUS=unhealthy: outbox: read probe: database not open",
		"STATUS=recording presses",
		"READY=1\nSTATUS=recording presses",
		"WATCHDOG=1",
		"STATUS=unhealthy: outbox: read probe: database not open",
	}
	if strings.Join(sent, "|") != strings.Join(want, "|") {
		t.Fatalf("sent %q\nwant %q", sent, want)
	}
}

// breakable is an outbox whose writes fail while broken is set.
type breakable struct {
	*buffer.Memory
	broken atomic.Bool
}

func (b *breakable) Append(build buffer.BuildFunc, state []byte) (uint64, error) {
	if b.broken.Load() {
		return 0, errors.New("write outbox.db: input/output error")
	}
	return b.Memory.Append(build, state)
}

func (b *breakable) SaveState(state []byte) error {
	if b.broken.Load() {
		return errors.New("write outbox.db: input/output error")
	}
	return b.Memory.SaveState(state)
}

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

// notes collects sd_notify messages and the heartbeats that caused them.
type notes struct {
	mu      sync.Mutex
	msgs    []string
	beats   int
	changed chan struct{}
}

func (n *notes) add(f func()) {
	n.mu.Lock()
	f()
	n.mu.Unlock()
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

// wait waits, with a deadline, until cond holds over the messages and the
// number of heartbeats so far.
func (n *notes) wait(t *testing.T, what string, cond func(msgs []string, beats int) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		n.mu.Lock()
		ok := cond(n.msgs, n.beats)
		n.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-n.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; sent %q", what, n.msgs)
		}
	}
}

func count(msgs []string, s string) int {
	c := 0
	for _, m := range msgs {
		if m == s {
			c++
		}
	}
	return c
}

// TestPingsStopWhileOutboxUnwritable runs a real agent whose outbox starts
// failing, and checks that the watchdog pings stop until it recovers.
func TestPingsStopWhileOutboxUnwritable(t *testing.T) {
	m, _ := buffer.NewMemory()
	o := &breakable{Memory: m}
	clock := sysclock.NewFake(time.Now(), "boot")
	n := &notes{changed: make(chan struct{}, 1)}
	// Every heartbeat is a full interval after the previous one, so a
	// healthy agent pings on every beat.
	w := watchdog.New(watchdog.Config{
		Notify:   func(s string) error { n.add(func() { n.msgs = append(n.msgs, s) }); return nil },
		Interval: time.Second,
		Clock:    &stepping{Clock: clockwork.NewRealClock()},
	})
	src := make(chanSource)
	a, err := agent.New(agent.Config{
		Device: "w05-a", Hall: "h1", Counter: "W05", Version: "test",
		Buttons:      []agent.Button{{Label: "a", Satisfaction: 5}, {Label: "b", Satisfaction: 4}, {Label: "c", Satisfaction: 3}},
		RatingWindow: 30 * time.Second, MaxRecords: 100,
		Uplink: uplink.Config{Broker: "tcp://127.0.0.1:1", ClientID: "t", Topics: uplink.CounterTopics("p", "h1", "W05")},
	}, agent.Parts{Outbox: o, Source: src, Clock: clock, Heartbeat: func(h agent.Health) {
		w.Beat(h)
		n.add(func() { n.beats++ })
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	n.wait(t, "READY and two pings", func(msgs []string, _ int) bool {
		return len(msgs) > 0 && msgs[0] == "READY=1\nSTATUS=recording presses" && count(msgs, "WATCHDOG=1") >= 2
	})

	o.broken.Store(true)
	src <- device.Press{Button: 1, At: clock.Now()}
	var sickAt, beatsAt int
	n.wait(t, "the unhealthy status", func(msgs []string, beats int) bool {
		for i, m := range msgs {
			if strings.HasPrefix(m, "STATUS=unhealthy: outbox: ") {
				sickAt, beatsAt = i, beats
				return true
			}
		}
		return false
	})
	n.wait(t, "eight heartbeats while the outbox is unwritable", func(_ []string, beats int) bool {
		return beats >= beatsAt+8
	})
	n.mu.Lock()
	after := append([]string(nil), n.msgs[sickAt+1:]...)
	n.mu.Unlock()
	if len(after) != 0 {
		t.Fatalf("sent %q while the outbox was unwritable", after)
	}

	// Space again: the agent's paced write probe notices, pings resume.
	o.broken.Store(false)
	clock.Advance(10 * time.Second)
	n.wait(t, "pings after recovery", func(msgs []string, _ int) bool {
		return count(msgs[sickAt:], "STATUS=recording presses") == 1 && count(msgs[sickAt:], "WATCHDOG=1") >= 1
	})
}

// stepping is a clock a second further on at each reading.
type stepping struct {
	clockwork.Clock
	n atomic.Int64
}

func (s *stepping) Now() time.Time { return time.Unix(s.n.Add(1), 0) }
