// Package live tells the hall's screens what just happened: a rating
// stored, a device's status changed, a counter called a ticket. The ingest
// path publishes to a [Hub]; each open dashboard subscribes to it. A
// subscriber that falls behind loses events, not the collector's time:
// publishing never blocks.
package live

import (
	"sync"
	"time"

	"github.com/hallrate/hallrate/record"
	"github.com/jonboulle/clockwork"
)

// Kinds of [Event].
const (
	Rating = "rating"
	Status = "status"
	Ticket = "ticket"
)

// Event says that something of one counter changed. It carries no data a
// screen shows: screens read that from the store, so a lost event costs
// at most a late update.
type Event struct {
	Kind    string
	Hall    string
	Counter string
	// Bad is true for a rating that opened a follow-up (a 差评).
	Bad bool
}

// CurrentTicket is the ticket a counter last published.
type CurrentTicket struct {
	record.Ticket
	Received time.Time
	// Via is how it reached the broker: "http" or "sql" when this
	// collector published it for the queue system, "mqtt" otherwise.
	Via string
}

// sent is a ticket this collector published and has not yet heard back.
type sent struct {
	t   record.Ticket
	via string
}

// Hub fans events out to subscribers and keeps each counter's current
// ticket. The zero value is not usable; call [NewHub].
type Hub struct {
	mu      sync.Mutex
	subs    map[chan Event]struct{}
	tickets map[[2]string]CurrentTicket
	sent    map[[2]string]sent
	clock   clockwork.Clock
}

// NewHub returns a hub on clock (nil: the real clock).
func NewHub(clock clockwork.Clock) *Hub {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return &Hub{subs: map[chan Event]struct{}{}, tickets: map[[2]string]CurrentTicket{}, sent: map[[2]string]sent{}, clock: clock}
}

// Subscribe returns a channel of events and the function that ends the
// subscription. The channel holds up to buffer events; more are dropped
// until the subscriber catches up.
func (h *Hub) Subscribe(buffer int) (<-chan Event, func()) {
	ch := make(chan Event, max(buffer, 1))
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs, ch)
			h.mu.Unlock()
		})
	}
}

// Publish hands e to every subscriber that has room for it. It never
// blocks.
func (h *Hub) Publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// Sent notes a ticket this collector is publishing for the queue system,
// and the door it came in by, so that [Hub.SetTicket] can tell it apart
// when the broker hands it back.
func (h *Hub) Sent(hall, counter string, t record.Ticket, via string) {
	h.mu.Lock()
	h.sent[[2]string{hall, counter}] = sent{t, via}
	h.mu.Unlock()
}

// SetTicket keeps the ticket a counter published and tells subscribers.
func (h *Hub) SetTicket(hall, counter string, t record.Ticket) {
	k := [2]string{hall, counter}
	h.mu.Lock()
	via := "mqtt"
	if s, ok := h.sent[k]; ok && s.t == t {
		via = s.via
	}
	at := h.clock.Now()
	if old, ok := h.tickets[k]; ok && old.Ticket == t {
		// The same message again (re-delivered after a reconnect): it
		// did not change.
		at = old.Received
	}
	h.tickets[k] = CurrentTicket{t, at, via}
	h.mu.Unlock()
	h.Publish(Event{Kind: Ticket, Hall: hall, Counter: counter})
}

// Ticket returns the current ticket of a counter, if one was heard.
func (h *Hub) Ticket(hall, counter string) (CurrentTicket, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.tickets[[2]string{hall, counter}]
	return t, ok
}

// Counters returns the counters of a hall with a ticket heard.
func (h *Hub) Counters(hall string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for k := range h.tickets {
		if k[0] == hall {
			out = append(out, k[1])
		}
	}
	return out
}

// Subscribers returns how many subscriptions are open.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}
