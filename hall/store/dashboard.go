package store

import (
	"context"
	"fmt"
)

// LatestRating is a rating as a tile shows it.
type LatestRating struct {
	StoredRating
	ClockSynced bool `json:"clock_synced"`
	Verified    bool `json:"verified"`
}

// UnverifiedRatings lists, newest first, up to n ratings of a hall that
// failed verification.
func (s *DB) UnverifiedRatings(ctx context.Context, hall string, n int) ([]LatestRating, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT id, device, hall, counter, seq, satisfaction, disposition, ticket,
			staff, project_no, pressed_at, service_day, join_state, case_no, stored_ms, clock_synced, verified, ticket_source, trust
		FROM rating WHERE hall = ? AND verified = 0 ORDER BY stored_ms DESC, id LIMIT ?`), hall, limit(n))
	if err != nil {
		return nil, fmt.Errorf("store: unverified ratings: %w", err)
	}
	return scanLatest(rows.Close, rows)
}

func scanLatest(closeRows func() error, rows interface {
	Next() bool
	Scan(...any) error
	Err() error
}) ([]LatestRating, error) {
	defer closeRows()
	var out []LatestRating
	for rows.Next() {
		var r LatestRating
		var synced, verified int
		if err := rows.Scan(&r.ID, &r.Device, &r.Hall, &r.Counter, &r.Seq, &r.Satisfaction, &r.Disposition,
			&r.Ticket, &r.Staff, &r.ProjectNo, &r.PressedAt, &r.ServiceDay, &r.JoinState, &r.CaseNo, &r.StoredMS,
			&synced, &verified, &r.TicketSource, &r.Trust); err != nil {
			return nil, fmt.Errorf("store: list ratings: %w", err)
		}
		r.ClockSynced, r.Verified = synced == 1, verified == 1
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list ratings: %w", err)
	}
	return out, nil
}
