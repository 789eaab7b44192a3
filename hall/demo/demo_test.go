package demo

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hallrate/hallrate/record"
)

var timings = Timings{Serving: 20 * time.Second, Done: 15 * time.Second, Idle: 3 * time.Second}

func TestCounterLifecycle(t *testing.T) {
	n := 0
	next := func() int { n++; return n }
	loc := time.FixedZone("CST", 8*3600)
	c := NewCounter("S01", timings, loc, next)
	now := time.Date(2026, 11, 24, 1, 15, 0, 0, time.UTC)
	want := []struct {
		ticket string
		state  record.TicketState
		wait   time.Duration
	}{
		{"A001", record.Serving, 20 * time.Second},
		{"A001", record.Done, 15 * time.Second},
		{"", record.Idle, 3 * time.Second},
		{"A002", record.Serving, 20 * time.Second},
	}
	for i, w := range want {
		m, wait := c.Next(now)
		if m.Ticket != w.ticket || m.State != w.state || wait != w.wait {
			t.Fatalf("step %d: %+v wait %s, want %+v", i, m, wait, w)
		}
		// What the demonstration publishes is what an agent accepts.
		got, err := record.DecodeTicket(Payload(m))
		if err != nil {
			t.Fatalf("step %d: %s: %v", i, Payload(m), err)
		}
		if got.Ticket != w.ticket || got.State != w.state || (w.state != record.Idle && (got.Staff != "S01" || got.Item == "")) {
			t.Fatalf("step %d: decoded %+v", i, got)
		}
		if got.At != "2026-11-24T09:15:00.000+08:00" {
			t.Fatalf("step %d: at %q", i, got.At)
		}
	}
	if m := c.Stop(now); m.State != record.Idle || m.Ticket != "" {
		t.Fatalf("stop: %+v", m)
	}
}

type published struct {
	topic  string
	ticket record.Ticket
	retain bool
}

type pubFunc func(ctx context.Context, topic string, payload []byte, retained bool) error

func (f pubFunc) Publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	return f(ctx, topic, payload, retained)
}

// clock hands out timers the test fires by hand.
type clock struct {
	mu     sync.Mutex
	timers []chan time.Time
	asked  chan time.Duration
}

func (c *clock) after(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	c.timers = append(c.timers, ch)
	c.mu.Unlock()
	c.asked <- d
	return ch
}

func (c *clock) fireLast() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers[len(c.timers)-1] <- time.Time{}
}

func TestRunnerPublishesForHeardCounters(t *testing.T) {
	pubs := make(chan published, 16)
	clk := &clock{asked: make(chan time.Duration, 16)}
	r := New(Config{
		Prefix: "hallrate/v1", Timings: timings,
		Publisher: pubFunc(func(_ context.Context, topic string, payload []byte, retained bool) error {
			tk, err := record.DecodeTicket(payload)
			if err != nil {
				t.Errorf("published %s: %v", payload, err)
			}
			pubs <- published{topic, tk, retained}
			return nil
		}),
		After: clk.after,
		// W04 is run by the staff key: heard first, it must get nothing.
		Skip: []string{"W04"},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	r.Hear("h1", "W04")
	r.Hear("h1", "W05")
	r.Hear("h1", "W05")
	expect := func(state record.TicketState, ticket string) {
		t.Helper()
		select {
		case p := <-pubs:
			if p.topic != "hallrate/v1/h1/W05/ticket" || !p.retain || p.ticket.State != state || p.ticket.Ticket != ticket {
				t.Fatalf("published %+v, want %s %s retained on the W05 ticket topic", p, state, ticket)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("nothing published, want %s %s", state, ticket)
		}
	}
	waitAsked := func(want time.Duration) {
		t.Helper()
		select {
		case d := <-clk.asked:
			if d != want {
				t.Fatalf("waits %s, want %s", d, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no timer set")
		}
	}
	expect(record.Serving, "A001")
	waitAsked(20 * time.Second)
	clk.fireLast()
	expect(record.Done, "A001")
	waitAsked(15 * time.Second)
	clk.fireLast()
	expect(record.Idle, "")
	waitAsked(3 * time.Second)
	clk.fireLast()
	expect(record.Serving, "A002")
	waitAsked(20 * time.Second)

	cancel()
	expect(record.Idle, "")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	select {
	case p := <-pubs:
		t.Fatalf("unexpected %+v (the counter heard twice runs twice?)", p)
	default:
	}
}
