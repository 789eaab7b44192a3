// Package buffer keeps presses in a durable outbox until the broker
// acknowledges them.
//
// The outbox numbers records with a contiguous sequence within an epoch. The
// epoch is a random id made with the outbox file: a new file (a new SD card,
// or a corrupt one moved aside) starts a new epoch, so record ids never
// repeat. Records leave the outbox only through [Outbox.Ack].
package buffer

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// Entry is one pending record.
type Entry struct {
	Seq  uint64
	Data []byte
}

// Slot is the place of a record about to be appended.
type Slot struct {
	Epoch string
	Seq   uint64
	// Chain is the chain value the previous record of this epoch was
	// appended with (nil for the first): it lets the caller link each
	// record to the one before it, such as by a hash.
	Chain []byte
}

// BuildFunc makes the payload of the record for slot, and the chain value
// that the next record's slot will carry. It runs within the append, so a
// record, its number and its link are stored together or not at all.
type BuildFunc func(slot Slot) (data, chain []byte, err error)

// Outbox is the durable queue between the press and the broker.
type Outbox interface {
	// Append stores a new record and the binding state that goes with it
	// durably and together (one write, or one commit), and returns the
	// record's seq. When Append returns nil the record survives a crash or
	// power cut.
	Append(build BuildFunc, state []byte) (uint64, error)
	// SaveState durably replaces the binding state.
	SaveState(state []byte) error
	// State returns the last saved binding state (nil if none).
	State() ([]byte, error)
	// Pending returns up to limit records with seq > after, in seq order.
	Pending(after uint64, limit int) ([]Entry, error)
	// Ack removes acknowledged records. Unknown seqs are ignored.
	Ack(seqs ...uint64) error
	// Epoch returns the epoch of this outbox.
	Epoch() string
	// LastSeq returns the seq of the last appended record (0 if none).
	LastSeq() uint64
	// Len returns the number of records not yet acknowledged.
	Len() int64
	Close() error
}

var (
	_ Outbox = (*Bolt)(nil)
	_ Outbox = (*Memory)(nil)
)

// NewEpoch returns a random epoch id of 8 hex digits.
func NewEpoch() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make epoch: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
