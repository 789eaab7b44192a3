package buffer

import (
	"fmt"
	"sort"
	"sync"
)

// Memory is an in-memory [Outbox] with the same semantics as [Bolt] but no
// durability. It serves tests of the parts around the outbox.
type Memory struct {
	mu      sync.Mutex
	epoch   string
	next    uint64
	records map[uint64][]byte
	state   []byte
	chain   []byte
}

// NewMemory returns an empty outbox with a fresh epoch.
func NewMemory() (*Memory, error) {
	epoch, err := NewEpoch()
	if err != nil {
		return nil, err
	}
	return &Memory{epoch: epoch, next: 1, records: map[uint64][]byte{}}, nil
}

// Append implements [Outbox].
func (m *Memory) Append(build BuildFunc, state []byte) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seq := m.next
	data, chain, err := build(Slot{Epoch: m.epoch, Seq: seq, Chain: append([]byte(nil), m.chain...)})
	if err != nil {
		return 0, fmt.Errorf("build record %d: %w", seq, err)
	}
	m.records[seq] = append([]byte(nil), data...)
	m.chain = append([]byte(nil), chain...)
	if state != nil {
		m.state = append([]byte(nil), state...)
	}
	m.next++
	return seq, nil
}

// SaveState implements [Outbox].
func (m *Memory) SaveState(state []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state = append([]byte(nil), state...)
	return nil
}

// State implements [Outbox].
func (m *Memory) State() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.state...), nil
}

// Pending implements [Outbox].
func (m *Memory) Pending(after uint64, limit int) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Entry
	for seq, data := range m.records {
		if seq > after {
			out = append(out, Entry{Seq: seq, Data: data})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Ack implements [Outbox].
func (m *Memory) Ack(seqs ...uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range seqs {
		delete(m.records, s)
	}
	return nil
}

// Epoch implements [Outbox].
func (m *Memory) Epoch() string { return m.epoch }

// LastSeq implements [Outbox].
func (m *Memory) LastSeq() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.next - 1
}

// Len implements [Outbox].
func (m *Memory) Len() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.records))
}

// Close implements [Outbox].
func (m *Memory) Close() error { return nil }
