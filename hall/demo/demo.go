// Package demo stands in for a hall's queue system: for every counter it
// hears from, it publishes a plausible ticket lifecycle (a ticket served,
// then done with the rating window open, then a short pause) on the
// counter's retained ticket topic, so terminals can be tried without one.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hallrate/hallrate/record"
	"github.com/jonboulle/clockwork"
)

// Timings are how long each state of a ticket lasts.
type Timings struct {
	// Serving is how long a ticket is served before it is done.
	Serving time.Duration
	// Done is how long a done ticket stays current: the rating window.
	Done time.Duration
	// Idle is the pause without a ticket before the next one is called.
	Idle time.Duration
}

// items are the services a demonstration ticket is for.
var items = [...]string{
	"business licence", "social security card", "residence permit",
	"property registration", "tax registration", "medical insurance",
}

// Counter is the ticket lifecycle of one counter.
type Counter struct {
	staff   string
	timings Timings
	loc     *time.Location
	next    func() int
	ticket  int
	state   record.TicketState
}

// NewCounter returns the lifecycle of a counter worked by staff. next
// numbers the tickets; sharing it between counters gives each ticket of
// the hall its own number, as a single queue does.
func NewCounter(staff string, t Timings, loc *time.Location, next func() int) *Counter {
	return &Counter{staff: staff, timings: t, loc: loc, next: next, state: record.Idle}
}

// Next moves the counter to its next state at now and returns the ticket
// message for it and how long the state lasts: idle, then serving a new
// ticket, then done, then idle again.
func (c *Counter) Next(now time.Time) (record.Ticket, time.Duration) {
	var wait time.Duration
	switch c.state {
	case record.Idle:
		c.ticket = c.next()
		c.state, wait = record.Serving, c.timings.Serving
	case record.Serving:
		c.state, wait = record.Done, c.timings.Done
	default:
		c.state, wait = record.Idle, c.timings.Idle
	}
	return c.message(now), wait
}

// Stop returns the idle message that leaves no ticket current.
func (c *Counter) Stop(now time.Time) record.Ticket {
	c.state = record.Idle
	return c.message(now)
}

func (c *Counter) message(now time.Time) record.Ticket {
	t := record.Ticket{V: record.Version, State: c.state, At: now.In(c.loc).Format(record.TimeLayout)}
	if c.state != record.Idle {
		t.Ticket = fmt.Sprintf("A%03d", c.ticket)
		t.Staff = c.staff
		t.Item = items[c.ticket%len(items)]
	}
	return t
}

// Payload encodes a ticket message as the contract writes it.
func Payload(t record.Ticket) []byte {
	m := map[string]any{"v": t.V, "state": t.State, "at": t.At}
	if t.State != record.Idle {
		m["ticket"], m["staff"], m["item"] = t.Ticket, t.Staff, t.Item
	}
	b, _ := json.Marshal(m) // a map of strings and an int always encodes
	return b
}

// Publisher publishes one message and waits for the broker's
// acknowledgement.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, retained bool) error
}

// Config configures a [Runner].
type Config struct {
	Prefix    string
	Timings   Timings
	Location  *time.Location
	Publisher Publisher
	Logger    *slog.Logger
	// Skip are counters the demonstration leaves alone: counters run by
	// the staff key, with no queue system.
	Skip []string
	// Now and After are the clock; they default to time.Now and
	// time.After.
	Clock clockwork.Clock
	After func(time.Duration) <-chan time.Time
}

type counterKey struct{ hall, counter string }

// Runner runs a lifecycle for every counter it hears of.
type Runner struct {
	cfg   Config
	heard chan counterKey

	mu      sync.Mutex
	known   map[counterKey]bool
	tickets int
}

// New returns a runner; call Run to start it.
func New(cfg Config) *Runner {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	return &Runner{cfg: cfg, heard: make(chan counterKey, 256), known: map[counterKey]bool{}}
}

// Hear tells the runner that a counter exists. It does not block: it may
// be called from the message path.
func (r *Runner) Hear(hall, counter string) {
	if slices.Contains(r.cfg.Skip, counter) {
		return
	}
	k := counterKey{hall, counter}
	r.mu.Lock()
	known := r.known[k]
	r.mu.Unlock()
	if known {
		return
	}
	select {
	case r.heard <- k:
	default: // the counter will be heard again
	}
}

func (r *Runner) nextTicket() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tickets = r.tickets%999 + 1
	return r.tickets
}

// Run publishes tickets until ctx is cancelled, then publishes idle for
// every counter, so no demonstration ticket stays current.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case k := <-r.heard:
			r.mu.Lock()
			if r.known[k] {
				r.mu.Unlock()
				continue
			}
			r.known[k] = true
			staff := fmt.Sprintf("S%02d", len(r.known))
			r.mu.Unlock()
			r.cfg.Logger.Info("demo tickets started", "hall", k.hall, "counter", k.counter, "staff", staff)
			c := NewCounter(staff, r.cfg.Timings, r.cfg.Location, r.nextTicket)
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.loop(ctx, k, c)
			}()
		}
	}
}

func (r *Runner) loop(ctx context.Context, k counterKey, c *Counter) {
	topic := r.cfg.Prefix + "/" + k.hall + "/" + k.counter + "/ticket"
	for {
		t, wait := c.Next(r.cfg.Clock.Now())
		r.publish(ctx, topic, t)
		select {
		case <-ctx.Done():
			// The run is over; say goodbye with a context of its own.
			stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			r.publish(stop, topic, c.Stop(r.cfg.Clock.Now()))
			cancel()
			return
		case <-r.cfg.After(wait):
		}
	}
}

func (r *Runner) publish(ctx context.Context, topic string, t record.Ticket) {
	if err := r.cfg.Publisher.Publish(ctx, topic, Payload(t), true); err != nil {
		r.cfg.Logger.Warn("demo ticket not published", "topic", topic, "ticket", t.Ticket, "state", t.State, "err", err)
		return
	}
	r.cfg.Logger.Debug("demo ticket published", "topic", topic, "ticket", t.Ticket, "state", t.State)
}
