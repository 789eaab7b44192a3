package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Join states and reasons of the join by counter and time.
const (
	// Ambiguous: several cases of the rating's counter hold its time; the
	// duty manager assigns it to one (POST /api/v1/ratings/{id}/assign).
	Ambiguous = "ambiguous"

	// ReasonNoCase: no case of its ticket, nor of its counter and time,
	// within the match window.
	ReasonNoCase = "no_case"
	// ReasonClockUnsynced: pressed with the clock not synchronised and
	// not repaired from a later synchronised record of the same boot, so
	// its time could not be trusted for a join by time.
	ReasonClockUnsynced = "clock_not_synced"
)

// migrateTicketSources adds what the ticket sources and the join by counter
// and time keep: each rating's ticket source, boot and uptime (to repair
// its time), why a rating stayed unmatched, the candidates of an ambiguous
// rating, who assigned it, and the SQL poller's cursors.
func migrateTicketSources(tx *sql.Tx, d dialect) error {
	return execAll(tx, d,
		`ALTER TABLE rating ADD COLUMN ticket_source TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN boot_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN uptime_ms BIGINT NOT NULL DEFAULT 0`,
		`ALTER TABLE rating ADD COLUMN join_reason TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN assigned_by TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN assigned_ms BIGINT`,
		`CREATE INDEX rating_boot ON rating (device, boot_id)`,
		`CREATE INDEX hcase_counter_time ON hcase (hall, counter, accepted_ms)`,
		`CREATE TABLE rating_candidate (
			rating_id TEXT NOT NULL,
			project_no TEXT NOT NULL,
			PRIMARY KEY (rating_id, project_no)
		)`,
		`CREATE TABLE ticket_cursor (
			name TEXT PRIMARY KEY,
			cursor TEXT NOT NULL,
			updated_ms BIGINT NOT NULL
		)`,
	)
}

// TimeRating is a waiting rating that may join by counter and time.
type TimeRating struct {
	WaitingRating
	Source      string
	ClockSynced bool
	BootID      string
	UptimeMS    int64
	StoredMS    int64
}

// TimeJoinable returns up to n waiting ratings to join by counter and time
// now: those of the staff key with a case of their counter they have not
// examined yet, and every rating stored before staleMS, whose ticket found
// no case within the match window.
func (j *JoinTx) TimeJoinable(n int, staleMS int64) ([]TimeRating, error) {
	rows, err := j.tx.QueryContext(j.ctx, j.d.q(`SELECT r.id, r.device, r.hall, r.counter, r.ticket, r.staff, r.project_no,
			r.satisfaction, r.pressed_at, r.pressed_ms, r.service_day, r.verified, r.join_mark,
			r.ticket_source, r.clock_synced, r.boot_id, r.uptime_ms, r.stored_ms
		FROM rating r WHERE r.join_state = 'waiting' AND (r.stored_ms < ? OR (r.ticket_source = 'staff' AND EXISTS (
			SELECT 1 FROM hcase c WHERE c.hall = r.hall AND c.counter = r.counter AND c.id > r.join_mark)))
		ORDER BY r.stored_ms, r.id LIMIT ?`), staleMS, n)
	if err != nil {
		return nil, fmt.Errorf("ratings to join by time: %w", err)
	}
	defer rows.Close()
	var out []TimeRating
	for rows.Next() {
		var w TimeRating
		var verified, synced int
		if err := rows.Scan(&w.ID, &w.Device, &w.Hall, &w.Counter, &w.Ticket, &w.Staff, &w.ProjectNo, &w.Satisfaction,
			&w.PressedAt, &w.PressedMS, &w.ServiceDay, &verified, &w.JoinMark,
			&w.Source, &synced, &w.BootID, &w.UptimeMS, &w.StoredMS); err != nil {
			return nil, fmt.Errorf("ratings to join by time: %w", err)
		}
		w.Verified, w.ClockSynced = verified == 1, synced == 1
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ratings to join by time: %w", err)
	}
	return out, nil
}

// BootOffset returns the wall-clock time of a boot of a device, in Unix
// milliseconds, from its latest record pressed with the clock
// synchronised: pressed_at − uptime_ms. It reports false when the boot has
// no such record (yet).
func (j *JoinTx) BootOffset(device, bootID string) (int64, bool, error) {
	if bootID == "" {
		return 0, false, nil
	}
	var off int64
	err := j.tx.QueryRowContext(j.ctx, j.d.q(`SELECT pressed_ms - uptime_ms FROM rating
		WHERE device = ? AND boot_id = ? AND clock_synced = 1 ORDER BY pressed_ms DESC LIMIT 1`), device, bootID).Scan(&off)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("boot %s of %s: %w", bootID, device, err)
	}
	return off, true, nil
}

// CasesAt returns the cases of a hall and counter without an evaluation
// whose [acceptedAt, finishedAt + window] holds atMS, and whose staff is
// staff when both name one.
func (j *JoinTx) CasesAt(hall, counter string, atMS, windowMS int64, staff string) ([]Case, error) {
	rows, err := j.tx.QueryContext(j.ctx, j.d.q(`SELECT `+caseCols+` FROM hcase c
		WHERE c.hall = ? AND c.counter = ? AND c.accepted_ms IS NOT NULL AND c.finished_ms IS NOT NULL
			AND c.accepted_ms <= ? AND c.finished_ms + ? >= ?
			AND (c.staff = '' OR ? = '' OR c.staff = ?)
			AND NOT EXISTS (SELECT 1 FROM esup_evaluation e WHERE e.project_no = c.project_no)
		ORDER BY c.accepted_ms, c.id`), hall, counter, atMS, windowMS, atMS, staff, staff)
	if err != nil {
		return nil, fmt.Errorf("cases of %s/%s at %d: %w", hall, counter, atMS, err)
	}
	defer rows.Close()
	var out []Case
	for rows.Next() {
		c, err := scanCase(rows)
		if err != nil {
			return nil, fmt.Errorf("cases of %s/%s at %d: %w", hall, counter, atMS, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cases of %s/%s at %d: %w", hall, counter, atMS, err)
	}
	return out, nil
}

// LastCaseID returns the highest case row id of a hall and counter (0 for
// none): a rating that examined them waits for a newer one.
func (j *JoinTx) LastCaseID(hall, counter string) (int64, error) {
	var id sql.NullInt64
	err := j.tx.QueryRowContext(j.ctx, j.d.q(`SELECT MAX(id) FROM hcase WHERE hall = ? AND counter = ?`), hall, counter).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("last case of %s/%s: %w", hall, counter, err)
	}
	return id.Int64, nil
}

// MarkAmbiguous marks a rating ambiguous between the cases of
// projectNos, for the duty manager to assign.
func (j *JoinTx) MarkAmbiguous(ratingID string, projectNos []string) error {
	for _, p := range projectNos {
		_, err := j.tx.ExecContext(j.ctx, j.d.q(`INSERT INTO rating_candidate (rating_id, project_no) VALUES (?, ?)
			ON CONFLICT DO NOTHING`), ratingID, p)
		if err != nil {
			return fmt.Errorf("candidate %s of %s: %w", p, ratingID, err)
		}
	}
	return j.setJoin(ratingID, Ambiguous, "", 0)
}

// MarkUnmatched marks a rating unmatched, with the reason.
func (j *JoinTx) MarkUnmatched(ratingID, reason string) error {
	_, err := j.tx.ExecContext(j.ctx, j.d.q(`UPDATE rating SET join_state = 'unmatched', join_reason = ? WHERE id = ?`),
		reason, ratingID)
	if err != nil {
		return fmt.Errorf("mark rating %s unmatched: %w", ratingID, err)
	}
	return nil
}

// AmbiguousRating returns an ambiguous rating and its candidates. It
// returns ErrNotFound for an unknown rating and ErrWrongState for one that
// is not ambiguous.
func (j *JoinTx) AmbiguousRating(id string) (WaitingRating, []string, error) {
	var w WaitingRating
	var verified int
	var state string
	err := j.tx.QueryRowContext(j.ctx, j.d.q(`SELECT id, device, hall, counter, ticket, staff, project_no, satisfaction,
			pressed_at, pressed_ms, service_day, verified, join_state FROM rating WHERE id = ?`), id).Scan(
		&w.ID, &w.Device, &w.Hall, &w.Counter, &w.Ticket, &w.Staff, &w.ProjectNo, &w.Satisfaction,
		&w.PressedAt, &w.PressedMS, &w.ServiceDay, &verified, &state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return w, nil, fmt.Errorf("rating %s: %w", id, ErrNotFound)
	case err != nil:
		return w, nil, fmt.Errorf("rating %s: %w", id, err)
	case state != Ambiguous:
		return w, nil, fmt.Errorf("rating %s is %s, not ambiguous: %w", id, state, ErrWrongState)
	}
	w.Verified = verified == 1
	cands, err := j.candidates(id)
	return w, cands, err
}

func (j *JoinTx) candidates(id string) ([]string, error) {
	rows, err := j.tx.QueryContext(j.ctx, j.d.q(`SELECT project_no FROM rating_candidate WHERE rating_id = ? ORDER BY project_no`), id)
	if err != nil {
		return nil, fmt.Errorf("candidates of %s: %w", id, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("candidates of %s: %w", id, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// NoteAssignment records who assigned a rating to its case, and when.
func (j *JoinTx) NoteAssignment(ratingID, by string, atMS int64) error {
	_, err := j.tx.ExecContext(j.ctx, j.d.q(`UPDATE rating SET assigned_by = ?, assigned_ms = ? WHERE id = ?`), by, atMS, ratingID)
	if err != nil {
		return fmt.Errorf("note assignment of %s: %w", ratingID, err)
	}
	return nil
}

// Candidates returns the candidate cases of each of the ratings.
func (s *DB) Candidates(ctx context.Context, ratingIDs []string) (map[string][]Case, error) {
	out := map[string][]Case{}
	for _, id := range ratingIDs {
		rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT `+caseColsOf("c")+` FROM rating_candidate k
			JOIN hcase c ON c.project_no = k.project_no WHERE k.rating_id = ? ORDER BY c.accepted_ms, c.id`), id)
		if err != nil {
			return nil, fmt.Errorf("store: candidates of %s: %w", id, err)
		}
		for rows.Next() {
			c, err := scanCase(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: candidates of %s: %w", id, err)
			}
			out[id] = append(out[id], c)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: candidates of %s: %w", id, err)
		}
	}
	return out, nil
}

// caseColsOf is caseCols qualified by a table alias.
func caseColsOf(alias string) string {
	cols := strings.Split(caseCols, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// TicketCursor returns the cursor a ticket poller saved under name, and
// false when it never saved one.
func (s *DB) TicketCursor(ctx context.Context, name string) (string, bool, error) {
	var c string
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT cursor FROM ticket_cursor WHERE name = ?`), name).Scan(&c)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("store: ticket cursor %s: %w", name, err)
	}
	return c, true, nil
}

// SaveTicketCursor keeps the cursor of the last row a ticket poller
// published.
func (s *DB) SaveTicketCursor(ctx context.Context, name, cursor string, nowMS int64) error {
	_, err := s.db.ExecContext(ctx, s.d.q(`INSERT INTO ticket_cursor (name, cursor, updated_ms) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, updated_ms = excluded.updated_ms`), name, cursor, nowMS)
	if err != nil {
		return fmt.Errorf("store: save ticket cursor %s: %w", name, err)
	}
	return nil
}
