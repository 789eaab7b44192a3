package store

import (
	"context"
	"fmt"
)

// LevelCount is how many ratings share a counter, staff member, service
// day, level, disposition and join state: the unit the hall's dashboard
// adds up into tiles, charts and rankings.
type LevelCount struct {
	Counter      string
	Staff        string
	Day          string
	Satisfaction int
	Disposition  string
	JoinState    string
	N            int64
	// Unsynced are those pressed while the device's clock was not
	// synchronised; Unverified those that failed verification.
	Unsynced   int64
	Unverified int64
}

// LevelCounts counts the ratings pressed in [fromMS, toMS) of one hall,
// with the staff of their case when they have one and of their ticket
// otherwise.
func (s *DB) LevelCounts(ctx context.Context, hall string, fromMS, toMS int64) ([]LevelCount, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT r.counter, COALESCE(NULLIF(c.staff, ''), r.staff) AS st, r.service_day,
			r.satisfaction, r.disposition, r.join_state, COUNT(*),
			SUM(CASE WHEN r.clock_synced = 0 THEN 1 ELSE 0 END), SUM(CASE WHEN r.verified = 0 THEN 1 ELSE 0 END)
		FROM rating r LEFT JOIN hcase c ON c.project_no = r.case_no AND r.case_no <> ''
		WHERE r.hall = ? AND r.pressed_ms >= ? AND r.pressed_ms < ?
		GROUP BY r.counter, st, r.service_day, r.satisfaction, r.disposition, r.join_state`), hall, fromMS, toMS)
	if err != nil {
		return nil, fmt.Errorf("store: level counts: %w", err)
	}
	defer rows.Close()
	var out []LevelCount
	for rows.Next() {
		var c LevelCount
		if err := rows.Scan(&c.Counter, &c.Staff, &c.Day, &c.Satisfaction, &c.Disposition, &c.JoinState, &c.N,
			&c.Unsynced, &c.Unverified); err != nil {
			return nil, fmt.Errorf("store: level counts: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: level counts: %w", err)
	}
	return out, nil
}

// LatestRating is the last rating stored of a counter.
type LatestRating struct {
	StoredRating
	ClockSynced bool `json:"clock_synced"`
	Verified    bool `json:"verified"`
}

// LatestRatings returns the last rating pressed at each counter of a hall.
func (s *DB) LatestRatings(ctx context.Context, hall string) ([]LatestRating, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT id, device, hall, counter, seq, satisfaction, disposition, ticket,
			staff, project_no, pressed_at, service_day, join_state, case_no, stored_ms, clock_synced, verified, ticket_source
		FROM (SELECT r.*, ROW_NUMBER() OVER (PARTITION BY counter ORDER BY pressed_ms DESC, stored_ms DESC, id DESC) AS rn
			FROM rating r WHERE hall = ?) x
		WHERE rn = 1 ORDER BY counter`), hall)
	if err != nil {
		return nil, fmt.Errorf("store: latest ratings: %w", err)
	}
	return scanLatest(rows.Close, rows)
}

// UnverifiedRatings lists, newest first, up to n ratings of a hall that
// failed verification.
func (s *DB) UnverifiedRatings(ctx context.Context, hall string, n int) ([]LatestRating, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT id, device, hall, counter, seq, satisfaction, disposition, ticket,
			staff, project_no, pressed_at, service_day, join_state, case_no, stored_ms, clock_synced, verified, ticket_source
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
			&synced, &verified, &r.TicketSource); err != nil {
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
