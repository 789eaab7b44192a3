package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/hallrate/hallrate/hall/config"
	"github.com/hallrate/hallrate/hall/ingest"
	"github.com/hallrate/hallrate/hall/link"
	"github.com/hallrate/hallrate/hall/live"
)

// handler is a fake ingester: it records each batch, answers with the
// next of errs (nil once they run out), and, when hold is set, waits for
// it before answering.
type handler struct {
	mu      sync.Mutex
	batches [][]string
	errs    []error
	hold    chan struct{}
	called  chan struct{}
}

func (h *handler) Handle(_ context.Context, msgs []ingest.Message) error {
	h.mu.Lock()
	var topics []string
	for _, m := range msgs {
		topics = append(topics, m.Topic)
	}
	h.batches = append(h.batches, topics)
	var err error
	if len(h.errs) > 0 {
		err, h.errs = h.errs[0], h.errs[1:]
	}
	h.mu.Unlock()
	if h.called != nil {
		h.called <- struct{}{}
	}
	if h.hold != nil {
		<-h.hold
	}
	return err
}

func (h *handler) seen() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprint(h.batches)
}

// What publishers hand over while a transaction runs is stored together in
// the next one, in the order it came, and each Commit returns its batch's
// answer.
func TestCommitterBatches(t *testing.T) {
	h := &handler{hold: make(chan struct{}), called: make(chan struct{}, 10), errs: []error{nil, errors.New("disk full")}}
	c := newCommitter(h)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.run(ctx)

	first := make(chan error, 1)
	go func() { first <- c.Commit(ctx, "t/0", []byte("0")) }()
	<-h.called // the first transaction runs and holds
	results := make([]chan error, 4)
	for i := range results {
		results[i] = make(chan error, 1)
		go func() { results[i] <- c.Commit(ctx, fmt.Sprintf("t/%d", i+1), []byte("x")) }()
		// One at a time, so that they queue in this order.
		waitFor(t, fmt.Sprintf("commit %d queued", i+1), func() bool { return len(c.reqs) == i+1 })
	}
	h.hold <- struct{}{}
	if err := <-first; err != nil {
		t.Fatalf("first commit: %v", err)
	}
	<-h.called
	h.hold <- struct{}{}
	for i, r := range results {
		if err := <-r; err == nil || err.Error() != "disk full" {
			t.Fatalf("commit %d: %v, want its batch's error", i+1, err)
		}
	}
	if got := h.seen(); got != "[[t/0] [t/1 t/2 t/3 t/4]]" {
		t.Fatalf("transactions %s, want the first alone and the four waiting together, in order", got)
	}
}

// waitFor polls cond until it holds, failing after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A commit after the committer stopped says so at once.
func TestCommitterStopped(t *testing.T) {
	c := newCommitter(&handler{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.run(ctx); close(done) }()
	cancel()
	<-done
	if err := c.Commit(context.Background(), "t", nil); !errors.Is(err, errCommitterStopped) {
		t.Fatalf("commit after stop: %v", err)
	}
}

// While the store refuses, the batch is tried again after 100 ms, then
// twice as long each time up to 5 s; it is stored once the store answers.
func TestRetryPolicy(t *testing.T) {
	errDown := errors.New("store away")
	h := &handler{errs: []error{errDown, errDown, errDown, errDown, errDown, errDown, errDown}, called: make(chan struct{}, 10)}
	clock := clockwork.NewFakeClock()
	r := retrier{in: h, clock: clock, log: slog.New(slog.DiscardHandler)}
	done := make(chan error, 1)
	go func() { done <- r.store(context.Background(), []ingest.Message{{Topic: "a"}, {Topic: "b"}}) }()
	for _, wait := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, 1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second} {
		<-h.called
		if err := clock.BlockUntilContext(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(wait - time.Nanosecond)
		select {
		case <-h.called:
			t.Fatalf("tried again before %s", wait)
		default:
		}
		clock.Advance(time.Nanosecond)
	}
	<-h.called
	if err := <-done; err != nil {
		t.Fatalf("stored at last: %v", err)
	}
	if got := h.seen(); got != "[[a b] [a b] [a b] [a b] [a b] [a b] [a b] [a b]]" {
		t.Fatalf("batches %s", got)
	}
}

// A stop while the store is away leaves the batch unacknowledged, for the
// broker to deliver again: no failure of the collector.
func TestRetryGivesUpOnStop(t *testing.T) {
	h := &handler{errs: []error{errors.New("store away")}, called: make(chan struct{}, 1)}
	clock := clockwork.NewFakeClock()
	r := retrier{in: h, clock: clock, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.store(ctx, []ingest.Message{{Topic: "a"}}) }()
	<-h.called
	cancel()
	if err := <-done; !errors.Is(err, errBatchLeft) {
		t.Fatalf("stop while the store is away: %v", err)
	}
}

// Ticket messages go to the hub, not the store; the rest keep their order.
func TestSplitTickets(t *testing.T) {
	hub := live.NewHub(clockwork.NewFakeClock())
	msgs := []link.Message{
		{Topic: "hallrate/v1/h1/W05/rating", Payload: []byte("r1")},
		{Topic: "hallrate/v1/h1/W05/ticket", Payload: []byte(`{"v":1,"ticket":"A001","state":"serving"}`)},
		{Topic: "hallrate/v1/h1/W05/status", Payload: []byte("s1")},
		{Topic: "hallrate/v1/h1/W06/ticket", Payload: []byte("not json")},
		{Topic: "elsewhere/x", Payload: []byte("o")},
	}
	rest := splitTickets(msgs, "hallrate/v1", hub)
	var topics []string
	for _, m := range rest {
		topics = append(topics, m.Topic)
	}
	if got := fmt.Sprint(topics); got != "[hallrate/v1/h1/W05/rating hallrate/v1/h1/W05/status elsewhere/x]" {
		t.Fatalf("left for the store: %s", got)
	}
	if tk, ok := hub.Ticket("h1", "W05"); !ok || tk.Ticket.Ticket != "A001" {
		t.Fatalf("W05's ticket on the hub: %+v %v", tk, ok)
	}
	if _, ok := hub.Ticket("h1", "W06"); ok {
		t.Fatal("a ticket message that does not decode reached the hub")
	}
}

// Ratings go through the shared group on an external broker, statuses
// plainly; on the embedded broker, which stores ratings itself, only the
// statuses are subscribed.
func TestFilters(t *testing.T) {
	cfg := config.Default()
	if got := fmt.Sprint(filters(cfg)); got != "[$share/hallrate-collector/hallrate/v1/+/+/rating hallrate/v1/+/+/status]" {
		t.Fatalf("external broker: %s", got)
	}
	cfg.MQTT.ShareGroup = ""
	if got := fmt.Sprint(filters(cfg)); got != "[hallrate/v1/+/+/rating hallrate/v1/+/+/status]" {
		t.Fatalf("no share group: %s", got)
	}
	cfg.MQTT.EmbeddedBroker = "127.0.0.1:1883"
	if got := fmt.Sprint(filters(cfg)); got != "[hallrate/v1/+/+/status]" {
		t.Fatalf("embedded broker: %s", got)
	}
}
