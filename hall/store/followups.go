package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Followup is the follow-up (整改工单) of a bad rating.
type Followup struct {
	ID           int64  `json:"id"`
	RatingID     string `json:"ratingId"`
	Hall         string `json:"hall"`
	Counter      string `json:"counter"`
	Ticket       string `json:"ticket"`
	ProjectNo    string `json:"projectNo"`
	Staff        string `json:"staff"`
	Satisfaction int    `json:"satisfaction"`
	PressedAt    string `json:"pressed_at"`
	// Due is the hall-local date it is due, 2006-01-02.
	Due       string `json:"due"`
	CreatedMS int64  `json:"created_ms"`
	ClosedMS  *int64 `json:"closed_ms,omitempty"`
	Note      string `json:"note,omitempty"`
	// ReasonCode and ReasonText are the reason the citizen gave, once it
	// arrived.
	ReasonCode string `json:"reasonCode,omitempty"`
	ReasonText string `json:"reasonText,omitempty"`
	// ReasonDueMS, when set, holds the alert until the reason arrives or
	// this time passes.
	ReasonDueMS int64 `json:"-"`
	// Alert is the alert message published for it, without the reason:
	// see [Followup.AlertMessage].
	Alert []byte `json:"-"`
}

// AlertMessage is the alert to publish: the stored message, with
// reasonCode and reasonText added when the reason arrived.
func (f Followup) AlertMessage() []byte {
	a := bytes.TrimSpace(f.Alert)
	if f.ReasonCode == "" || len(a) < 2 || a[len(a)-1] != '}' {
		return f.Alert
	}
	code, _ := json.Marshal(f.ReasonCode) // strings cannot fail
	text, _ := json.Marshal(f.ReasonText)
	out := append(bytes.Clone(a[:len(a)-1]), `,"reasonCode":`...)
	out = append(append(append(out, code...), `,"reasonText":`...), text...)
	return append(out, '}')
}

func (s *DB) openFollowups(ctx context.Context, tx *sql.Tx, rs []Rating) error {
	for _, r := range rs {
		f := r.Followup
		if f == nil {
			continue
		}
		_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO followup (rating_id, hall, counter, ticket, project_no, staff,
				satisfaction, pressed_at, due, created_ms, alert, reason_due_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rating_id) DO NOTHING`),
			r.ID, f.Hall, f.Counter, f.Ticket, f.ProjectNo, f.Staff, f.Satisfaction, f.PressedAt, f.Due, f.CreatedMS, string(f.Alert),
			f.ReasonDueMS)
		if err != nil {
			return fmt.Errorf("open follow-up of %s: %w", r.ID, err)
		}
	}
	return nil
}

const followupCols = `id, rating_id, hall, counter, ticket, project_no, staff, satisfaction, pressed_at, due,
	created_ms, closed_ms, note, alert, reason_code, reason_label, reason_due_ms`

func scanFollowup(sc interface{ Scan(...any) error }) (Followup, error) {
	var f Followup
	var closed sql.NullInt64
	var alert string
	err := sc.Scan(&f.ID, &f.RatingID, &f.Hall, &f.Counter, &f.Ticket, &f.ProjectNo, &f.Staff, &f.Satisfaction,
		&f.PressedAt, &f.Due, &f.CreatedMS, &closed, &f.Note, &alert, &f.ReasonCode, &f.ReasonText, &f.ReasonDueMS)
	if closed.Valid {
		f.ClosedMS = &closed.Int64
	}
	f.Alert = []byte(alert)
	return f, err
}

// Followups lists follow-ups, newest first: open only, or all.
func (s *DB) Followups(ctx context.Context, openOnly bool, n int) ([]Followup, error) {
	q := `SELECT ` + followupCols + ` FROM followup`
	if openOnly {
		q += ` WHERE closed_ms IS NULL`
	}
	q += ` ORDER BY id DESC LIMIT ?`
	rows, err := s.db.QueryContext(ctx, s.d.q(q), limit(n))
	if err != nil {
		return nil, fmt.Errorf("store: list follow-ups: %w", err)
	}
	defer rows.Close()
	var out []Followup
	for rows.Next() {
		f, err := scanFollowup(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list follow-ups: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list follow-ups: %w", err)
	}
	return out, nil
}

// CloseFollowup closes an open follow-up with a note. It returns
// [ErrNotFound] for an unknown id and [ErrWrongState] when it is closed.
func (s *DB) CloseFollowup(ctx context.Context, id int64, note string, nowMS int64) (Followup, error) {
	var f Followup
	err := s.inTx(ctx, "close follow-up", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.d.q(`UPDATE followup SET closed_ms = ?, note = ? WHERE id = ? AND closed_ms IS NULL`), nowMS, note, id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		f, err = scanFollowup(tx.QueryRowContext(ctx, s.d.q(`SELECT `+followupCols+` FROM followup WHERE id = ?`), id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrWrongState
		}
		return nil
	})
	return f, err
}

// ClaimAlerts leases up to n alerts not yet published until leaseUntilMS
// and returns them; an alert waiting for its reason is claimed once the
// reason arrived or its wait is over. An alert is marked published only
// after the broker's PUBACK ([DB.MarkAlertSent]); one whose publishing
// fails is released ([DB.ReleaseAlert]); one whose publisher died is
// claimed again when its lease has run out. So each alert is published at
// least once.
func (s *DB) ClaimAlerts(ctx context.Context, nowMS, leaseUntilMS int64, n int) ([]Followup, error) {
	var out []Followup
	err := s.inTx(ctx, "claim alerts", func(tx *sql.Tx) error {
		out = nil
		rows, err := tx.QueryContext(ctx, s.d.q(`UPDATE followup SET alert_lease_ms = ?
			WHERE alert_sent_ms IS NULL AND alert_lease_ms <= ? AND id IN (SELECT id FROM followup
				WHERE alert_sent_ms IS NULL AND alert_lease_ms <= ? AND (reason_due_ms <= ? OR reason_code <> '')
				ORDER BY id LIMIT ?`+s.d.skipLocked+`)
			RETURNING `+followupCols), leaseUntilMS, nowMS, nowMS, nowMS, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			f, err := scanFollowup(rows)
			if err != nil {
				return err
			}
			out = append(out, f)
		}
		return rows.Err()
	})
	return out, err
}

// MarkAlertSent records that the alert of follow-up id was published (its
// PUBACK came) at nowMS.
func (s *DB) MarkAlertSent(ctx context.Context, id, nowMS int64) error {
	if _, err := s.db.ExecContext(ctx, s.d.q(`UPDATE followup SET alert_sent_ms = ?, alert_lease_ms = 0 WHERE id = ?`), nowMS, id); err != nil {
		return fmt.Errorf("store: mark alert %d sent: %w", id, err)
	}
	return nil
}

// ReleaseAlert gives up the lease of the alert of follow-up id, not
// published.
func (s *DB) ReleaseAlert(ctx context.Context, id int64) error {
	if _, err := s.db.ExecContext(ctx, s.d.q(`UPDATE followup SET alert_lease_ms = 0 WHERE id = ? AND alert_sent_ms IS NULL`), id); err != nil {
		return fmt.Errorf("store: release alert %d: %w", id, err)
	}
	return nil
}
