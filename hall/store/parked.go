package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Parked is a message the collector could not keep: it broke the field
// rules, or the database refused it on its own. It is kept here, its raw
// bytes as hex so that any bytes fit, and acknowledged, so the messages
// after it are not held back.
type Parked struct {
	ID    int64  `json:"id"`
	Topic string `json:"topic"`
	// Payload is the message as received, up to MaxParkedPayload bytes;
	// Size its full length.
	Payload    []byte `json:"-"`
	PayloadHex string `json:"payload_hex"`
	Size       int    `json:"size"`
	Reason     string `json:"reason"`
	ReceivedMS int64  `json:"received_ms"`
}

// MaxParkedPayload bounds the bytes of a parked message that are kept.
const MaxParkedPayload = 64 << 10

// MaxParked bounds the parked messages kept: a flood keeps the newest.
const MaxParked = 10000

// migrateParked is migration 3: the parked messages.
func migrateParked(tx *sql.Tx, d dialect) error {
	return execAll(tx, d,
		`CREATE TABLE parked (
			id `+d.serial+`,
			topic TEXT NOT NULL,
			payload_hex TEXT NOT NULL,
			size BIGINT NOT NULL,
			reason TEXT NOT NULL,
			received_ms BIGINT NOT NULL
		)`,
	)
}

func (s *DB) park(ctx context.Context, tx *sql.Tx, ps []Parked) error {
	if len(ps) == 0 {
		return nil
	}
	for _, p := range ps {
		payload := p.Payload
		if len(payload) > MaxParkedPayload {
			payload = payload[:MaxParkedPayload]
		}
		_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO parked (topic, payload_hex, size, reason, received_ms) VALUES (?, ?, ?, ?, ?)`),
			Printable(p.Topic, 1024), hex.EncodeToString(payload), len(p.Payload), Printable(p.Reason, 1024), p.ReceivedMS)
		if err != nil {
			return fmt.Errorf("park message: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM parked WHERE id <= (SELECT MAX(id) FROM parked) - ?`), MaxParked); err != nil {
		return fmt.Errorf("prune parked messages: %w", err)
	}
	return nil
}

// ParkedMessages returns the newest n parked messages, newest first, and
// how many are kept.
func (s *DB) ParkedMessages(ctx context.Context, n int) ([]Parked, int64, error) {
	var total int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM parked`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: parked messages: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT id, topic, payload_hex, size, reason, received_ms FROM parked ORDER BY id DESC LIMIT ?`), n)
	if err != nil {
		return nil, 0, fmt.Errorf("store: parked messages: %w", err)
	}
	defer rows.Close()
	var out []Parked
	for rows.Next() {
		var p Parked
		if err := rows.Scan(&p.ID, &p.Topic, &p.PayloadHex, &p.Size, &p.Reason, &p.ReceivedMS); err != nil {
			return nil, 0, fmt.Errorf("store: parked messages: %w", err)
		}
		if p.Payload, err = hex.DecodeString(p.PayloadHex); err != nil {
			return nil, 0, fmt.Errorf("store: parked message %d: %w", p.ID, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("store: parked messages: %w", err)
	}
	return out, total, nil
}

// Printable makes s fit any text column and any log line: invalid UTF-8
// and control characters become U+FFFD, and it is cut to at most max bytes.
func Printable(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0x2028 || r == 0x2029 || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			return '\uFFFD'
		}
		return r
	}, s)
	for len(s) > max {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}
