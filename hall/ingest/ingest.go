// Package ingest decides what the collector keeps. It decodes the
// terminals' rating and status messages, keeps each press record exactly
// once however often it is delivered, and audits every device's seqs for
// loss: a gap in a device's epoch, a gap filled later by a late record, and
// records a device reports delivered that never arrived.
package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hallrate/hallrate/record"
)

// Message is one message from the broker.
type Message struct {
	Topic   string
	Payload []byte
}

// Config configures an [Ingester].
type Config struct {
	// Prefix is the topic prefix, such as "hallrate/v1".
	Prefix string
	Sink   Sink
	Logger *slog.Logger
	Now    func() time.Time
	// OnRating is told of every newly stored record, in order, after it is
	// durable. It must return promptly.
	OnRating func(record.Press)
	// OnStatus is told of every status message. It must return promptly.
	OnStatus func(t Topic, s record.Status)
	// OnEvent is told of every finding of the seq audit, after it is
	// logged. It must return promptly.
	OnEvent func(Event)
}

// Stats are the ingester's counters.
type Stats struct {
	Stored     int64 // records newly stored
	Duplicates int64 // records already stored, delivered again
	Malformed  int64 // messages that could not be decoded
	Mismatched int64 // records whose hall or counter differ from their topic
	Statuses   int64 // status messages received
	Restored   int64 // records read back from the sink at start
	Corrupt    int64 // lines of the sink that are not records
	Gaps       int64 // gaps opened
	Filled     int64 // seqs received late, inside a gap
}

// Ingester stores the records of a stream of messages. Its methods are
// safe for concurrent use.
type Ingester struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	ledger *Ledger
	stats  Stats
}

// New returns an ingester that first reads back what cfg.Sink holds, so
// that records stored before a restart are not stored again. Lines of the
// sink that are not records are logged and skipped.
func New(cfg Config) (*Ingester, error) {
	if cfg.Sink == nil {
		return nil, errors.New("ingest: no sink")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnRating == nil {
		cfg.OnRating = func(record.Press) {}
	}
	if cfg.OnStatus == nil {
		cfg.OnStatus = func(Topic, record.Status) {}
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(Event) {}
	}
	in := &Ingester{cfg: cfg, log: cfg.Logger, ledger: NewLedger()}
	err := cfg.Sink.Each(func(b []byte) error {
		p, err := record.DecodePress(b)
		if err != nil {
			in.stats.Corrupt++
			in.log.Warn("stored line is not a record; skipped", "line", in.stats.Restored+in.stats.Corrupt, "err", err)
			return nil
		}
		in.stats.Restored++
		// The findings of a restored history are in the summary, not
		// reported again one by one.
		in.ledger.Add(p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ingest: read back stored records: %w", err)
	}
	return in, nil
}

// Stats returns the counters.
func (in *Ingester) Stats() Stats {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.stats
}

// Audit returns the state of the loss audit.
func (in *Ingester) Audit() Audit {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.ledger.Audit()
}

// Seen reports whether the record with this id is stored.
func (in *Ingester) Seen(id string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.ledger.Seen(id)
}

// step is what one message of a batch does once the batch is stored.
type step struct {
	topic  Topic
	press  *record.Press
	status *record.Status
}

// Handle decodes a batch of messages, stores the new records with one
// Append and then reports them. Messages that cannot be decoded and records
// already stored are logged and counted, never an error: the caller may
// acknowledge the whole batch once Handle returns nil. An error means the
// sink failed and nothing of the batch may be acknowledged.
func (in *Ingester) Handle(msgs []Message) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	var steps []step
	var payloads [][]byte
	batch := map[string]bool{}
	for _, m := range msgs {
		t, err := ParseTopic(in.cfg.Prefix, m.Topic)
		if err != nil {
			in.malformed(m, err)
			continue
		}
		switch t.Kind {
		case "rating":
			p, compact, err := decodePress(m.Payload)
			if err != nil {
				in.malformed(m, err)
				continue
			}
			if in.ledger.Seen(p.ID) || batch[p.ID] {
				in.stats.Duplicates++
				in.log.Debug("duplicate record", "id", p.ID)
				continue
			}
			batch[p.ID] = true
			payloads = append(payloads, compact)
			steps = append(steps, step{topic: t, press: &p})
		case "status":
			s, err := decodeStatus(m.Payload)
			if err != nil {
				in.malformed(m, err)
				continue
			}
			steps = append(steps, step{topic: t, status: &s})
		default:
			in.malformed(m, fmt.Errorf("topic %q: not a rating or status topic", m.Topic))
		}
	}
	if err := in.cfg.Sink.Append(payloads); err != nil {
		return fmt.Errorf("ingest: store %d records: %w", len(payloads), err)
	}
	for _, s := range steps {
		if s.press != nil {
			in.stored(s.topic, *s.press)
		} else {
			in.stats.Statuses++
			in.ledger.SetStatus(s.topic.Hall, s.topic.Counter, *s.status, in.cfg.Now())
			in.cfg.OnStatus(s.topic, *s.status)
		}
	}
	return nil
}

func (in *Ingester) stored(t Topic, p record.Press) {
	in.stats.Stored++
	if p.Hall != t.Hall || p.Counter != t.Counter {
		in.stats.Mismatched++
		in.log.Warn("record published on another counter's topic", "id", p.ID,
			"hall", p.Hall, "counter", p.Counter, "topic_hall", t.Hall, "topic_counter", t.Counter)
	}
	for _, e := range in.ledger.Add(p) {
		switch e.Kind {
		case GapOpened:
			in.stats.Gaps++
			in.log.Warn("seq gap: records missing", "device", e.Device, "epoch", e.Epoch,
				"missing", e.Seqs.String(), "count", e.Seqs.Len())
		case GapFilled:
			in.stats.Filled++
			in.log.Info("seq gap filled by a late record", "device", e.Device, "epoch", e.Epoch, "seq", e.Seqs.From)
		}
		in.cfg.OnEvent(e)
	}
	in.cfg.OnRating(p)
}

// malformed logs a message that cannot be used. A broken publisher could
// send many: log the first ten, then every hundredth.
func (in *Ingester) malformed(m Message, err error) {
	in.stats.Malformed++
	if n := in.stats.Malformed; n <= 10 || n%100 == 0 {
		in.log.Warn("malformed message ignored", "topic", m.Topic, "err", err, "malformed_total", n)
	}
}

// decodePress checks a press record and returns it with its payload as
// compact JSON, fit for one line of a file. Fields the collector does not
// know are kept.
func decodePress(payload []byte) (record.Press, []byte, error) {
	p, err := record.DecodePress(payload)
	if err != nil {
		return record.Press{}, nil, err
	}
	var b bytes.Buffer
	if err := json.Compact(&b, payload); err != nil {
		return record.Press{}, nil, fmt.Errorf("record: %w", err)
	}
	return p, b.Bytes(), nil
}

// decodeStatus checks a status message.
func decodeStatus(payload []byte) (record.Status, error) {
	var s record.Status
	if err := json.Unmarshal(payload, &s); err != nil {
		return record.Status{}, fmt.Errorf("status: not a status message: %w", err)
	}
	if s.V != record.Version {
		return record.Status{}, fmt.Errorf("status: unsupported version %d", s.V)
	}
	if !record.ValidID(s.Device) {
		return record.Status{}, fmt.Errorf("status: device: invalid id %q", s.Device)
	}
	if s.Epoch != "" && !record.ValidID(s.Epoch) {
		return record.Status{}, fmt.Errorf("status: epoch: invalid id %q", s.Epoch)
	}
	return s, nil
}
