package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// PendingExport is a stored record that its collector has not yet written
// to its export file (--out).
type PendingExport struct {
	ID  string
	Raw []byte
}

// markExports notes, in the transaction that stores them, that owner must
// still write the records ids to its export file.
func (s *DB) markExports(ctx context.Context, tx *sql.Tx, owner string, ids []string) error {
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO export_pending (owner, rating_id) VALUES (?, ?)
			ON CONFLICT (owner, rating_id) DO NOTHING`), owner, id); err != nil {
			return fmt.Errorf("mark export of %s: %w", id, err)
		}
	}
	return nil
}

// PendingExports returns up to n records owner stored and has not written
// to its export file yet, in the order they were stored.
func (s *DB) PendingExports(ctx context.Context, owner string, n int) ([]PendingExport, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT r.id, r.raw FROM export_pending p JOIN rating r ON r.id = p.rating_id
		WHERE p.owner = ? ORDER BY r.stored_ms, r.id LIMIT ?`), owner, limit(n))
	if err != nil {
		return nil, fmt.Errorf("store: pending exports of %s: %w", owner, err)
	}
	defer rows.Close()
	var out []PendingExport
	for rows.Next() {
		var e PendingExport
		var raw string
		if err := rows.Scan(&e.ID, &raw); err != nil {
			return nil, fmt.Errorf("store: pending exports of %s: %w", owner, err)
		}
		e.Raw = []byte(raw)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: pending exports of %s: %w", owner, err)
	}
	return out, nil
}

// ClearExports records that owner's export file holds the records ids.
func (s *DB) ClearExports(ctx context.Context, owner string, ids []string) error {
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), maxRows)]
		ids = ids[len(chunk):]
		args := []any{owner}
		for _, id := range chunk {
			args = append(args, id)
		}
		marks := strings.TrimSuffix(strings.Repeat("?, ", len(chunk)), ", ")
		if _, err := s.db.ExecContext(ctx, s.d.q(`DELETE FROM export_pending WHERE owner = ? AND rating_id IN (`+marks+`)`), args...); err != nil {
			return fmt.Errorf("store: clear %d exports of %s: %w", len(chunk), owner, err)
		}
	}
	return nil
}
