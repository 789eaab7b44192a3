package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/internal/throttle"
	"github.com/hallrate/hallrate/record"
)

// StoredStore tells what is stored of an epoch.
type StoredStore interface {
	Stored(ctx context.Context, device, epoch string) (store.StoredAck, error)
}

// Publisher publishes a message with QoS 1.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, retained bool) error
}

type terminal struct{ hall, counter, device, epoch string }

// Acker publishes, per terminal, retained at QoS 1, which of its records
// are stored: the end-to-end acknowledgement an agent keeps its records
// for. It publishes at most once an interval per terminal, and again every
// Every for each terminal it knows, stored or not: an agent resends what
// is still unconfirmed only on a fresh acknowledgement, proof that the
// collector is there and heard nothing more.
type Acker struct {
	Store     StoredStore
	Publisher Publisher
	Prefix    string
	Logger    *slog.Logger
	// Every is how often each known terminal's acknowledgement is
	// published again; 0 publishes only after a store.
	Every time.Duration

	mu    sync.Mutex
	dirty map[terminal]bool
	// known are the terminals' current epochs, from their records and
	// statuses: the heartbeat's list.
	known map[terminal]bool
	kick  chan struct{}
}

// Mark notes that r was stored: its terminal's acknowledgement is due.
func (a *Acker) Mark(r store.Rating) {
	a.mark(terminal{r.Hall, r.Counter, r.Device, r.Epoch}, true)
}

// MarkStatus notes a terminal's status: its epoch is known from then on,
// with or without records, and an acknowledgement is due at the next
// heartbeat.
func (a *Acker) MarkStatus(st store.StatusUpdate) {
	if st.Epoch == "" {
		return
	}
	a.mark(terminal{st.Hall, st.Counter, st.Device, st.Epoch}, false)
}

func (a *Acker) mark(t terminal, now bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init()
	if !a.known[t] {
		// One epoch per device: a new one replaces the old.
		for k := range a.known {
			if k.device == t.device {
				delete(a.known, k)
			}
		}
		a.known[t] = true
	}
	if !now {
		return
	}
	a.dirty[t] = true
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *Acker) init() {
	if a.dirty == nil {
		a.dirty = map[terminal]bool{}
		a.known = map[terminal]bool{}
		a.kick = make(chan struct{}, 1)
	}
}

// beat makes every known terminal's acknowledgement due.
func (a *Acker) beat() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for t := range a.known {
		a.dirty[t] = true
	}
}

func (a *Acker) take() []terminal {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ts []terminal
	for t := range a.dirty {
		ts = append(ts, t)
	}
	clear(a.dirty)
	return ts
}

func (a *Acker) kicked() chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.init()
	return a.kick
}

// Once publishes the acknowledgements due; one that fails is due again.
func (a *Acker) Once(ctx context.Context) error {
	var failed error
	for _, t := range a.take() {
		if err := a.publish(ctx, t); err != nil {
			failed = err
			a.mu.Lock()
			a.dirty[t] = true
			a.mu.Unlock()
		}
	}
	return failed
}

func (a *Acker) publish(ctx context.Context, t terminal) error {
	s, err := a.Store.Stored(ctx, t.device, t.epoch)
	if err != nil {
		return err
	}
	b, err := json.Marshal(record.Stored{V: record.Version, Device: t.device, Epoch: t.epoch, ThroughSeq: s.Through, HighestSeq: s.Highest, Missing: s.Missing})
	if err != nil {
		return fmt.Errorf("ingest: stored message: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.Publisher.Publish(pctx, a.Prefix+"/"+t.hall+"/"+t.counter+"/stored", b, true); err != nil {
		return fmt.Errorf("ingest: publish stored of %s: %w", t.device, err)
	}
	return nil
}

// Run publishes what is due at most once an interval until ctx ends.
func (a *Acker) Run(ctx context.Context, interval time.Duration) {
	kick := a.kicked()
	var heartbeat <-chan time.Time
	if a.Every > 0 {
		t := time.NewTicker(a.Every)
		defer t.Stop()
		heartbeat = t.C
	}
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-heartbeat:
			a.beat()
		}
		if err := a.Once(ctx); err != nil && ctx.Err() == nil {
			failures++
			if throttle.Failures().Log(int64(failures)) {
				a.Logger.Warn("stored acknowledgement not published; will retry", "err", err, "failures", failures)
			}
			select { // try again after the interval
			case kick <- struct{}{}:
			default:
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}
