package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hallrate/hallrate/hall/store"
)

// StoredStore tells what is stored of an epoch.
type StoredStore interface {
	Stored(ctx context.Context, device, epoch string) (store.StoredAck, error)
}

// Publisher publishes a message with QoS 1.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, retained bool) error
}

// StoredMessage is the payload of {prefix}/{hall}/{counter}/stored: every
// record of the device's epoch up to ThroughSeq is stored, and above it
// all up to the highest received but Missing.
type StoredMessage struct {
	V          int      `json:"v"`
	Device     string   `json:"device"`
	Epoch      string   `json:"epoch"`
	ThroughSeq uint64   `json:"through_seq"`
	Missing    []uint64 `json:"missing"`
}

type terminal struct{ hall, counter, device, epoch string }

// Acker publishes, per terminal, retained at QoS 1, which of its records
// are stored: the end-to-end acknowledgement an agent keeps its records
// for. It publishes at most once an interval per terminal.
type Acker struct {
	Store     StoredStore
	Publisher Publisher
	Prefix    string
	Logger    *slog.Logger

	mu    sync.Mutex
	dirty map[terminal]bool
	kick  chan struct{}
}

// Mark notes that r was stored: its terminal's acknowledgement is due.
func (a *Acker) Mark(r store.Rating) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dirty == nil {
		a.dirty = map[terminal]bool{}
		a.kick = make(chan struct{}, 1)
	}
	a.dirty[terminal{r.Hall, r.Counter, r.Device, r.Epoch}] = true
	select {
	case a.kick <- struct{}{}:
	default:
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
	if a.kick == nil {
		a.dirty = map[terminal]bool{}
		a.kick = make(chan struct{}, 1)
	}
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
	b, err := json.Marshal(StoredMessage{V: 1, Device: t.device, Epoch: t.epoch, ThroughSeq: s.Through, Missing: s.Missing})
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
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
		if err := a.Once(ctx); err != nil && ctx.Err() == nil {
			failures++
			if failures <= 3 || failures%100 == 0 {
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
