package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Delivery states of an evaluation.
const (
	// Pending: queued for the http sink.
	Pending = "pending"
	// Delivered: the http sink's receiver accepted it.
	Delivered = "delivered"
	// Rejected: the receiver refused it; sent again only when asked.
	Rejected = "rejected"
	// InTable: kept for the table sink; taken when taken_at is set.
	InTable = "table"
	// Held: made with sink "none"; never sent.
	Held = "held"
)

// Evaluation is the evaluation of one case, as queued for the sink.
type Evaluation struct {
	RatingID     string `json:"ratingId"`
	ProjectNo    string `json:"projectNo"`
	Hall         string `json:"hall"`
	Counter      string `json:"counter"`
	Ticket       string `json:"ticket"`
	Device       string `json:"device"`
	ProManager   string `json:"proManager"`
	Satisfaction string `json:"satisfaction"`
	AssessTime   string `json:"assessTime"`
	// Payload is the evaluation with the national field names, as sent.
	Payload   []byte `json:"-"`
	State     string `json:"state"`
	CreatedMS int64  `json:"created_ms"`

	Attempts    int    `json:"attempts"`
	NextMS      int64  `json:"next_ms,omitempty"`
	LastStatus  int    `json:"last_status,omitempty"`
	LastError   string `json:"last_error,omitempty"`
	LastBody    string `json:"last_body,omitempty"`
	DeliveredMS *int64 `json:"delivered_ms,omitempty"`
	TakenAt     string `json:"taken_at,omitempty"`
}

const evalCols = `rating_id, project_no, hall, counter, ticket, device, pro_manager, satisfaction, assess_time,
	payload, state, created_ms, attempts, next_ms, last_status, last_error, last_body, delivered_ms, taken_at`

func scanEval(sc interface{ Scan(...any) error }) (Evaluation, error) {
	var e Evaluation
	var payload string
	var delivered sql.NullInt64
	var taken sql.NullString
	err := sc.Scan(&e.RatingID, &e.ProjectNo, &e.Hall, &e.Counter, &e.Ticket, &e.Device, &e.ProManager,
		&e.Satisfaction, &e.AssessTime, &payload, &e.State, &e.CreatedMS, &e.Attempts, &e.NextMS, &e.LastStatus,
		&e.LastError, &e.LastBody, &delivered, &taken)
	e.Payload = []byte(payload)
	if delivered.Valid {
		e.DeliveredMS = &delivered.Int64
	}
	e.TakenAt = taken.String
	return e, err
}

// ClaimDue leases up to n pending evaluations due at nowMS to owner until
// leaseUntilMS and returns them. Another collector does not claim them
// while the lease runs; a collector that dies leaves them to the others
// once it expires.
func (s *DB) ClaimDue(ctx context.Context, owner string, nowMS, leaseUntilMS int64, n int) ([]Evaluation, error) {
	var out []Evaluation
	err := s.inTx(ctx, "claim evaluations", func(tx *sql.Tx) error {
		out = nil
		// The outer conditions repeat the inner ones: PostgreSQL checks
		// them again on a row another transaction changed meanwhile.
		rows, err := tx.QueryContext(ctx, s.d.q(`UPDATE esup_evaluation SET lease_owner = ?, lease_until = ?
			WHERE state = 'pending' AND next_ms <= ? AND lease_until <= ? AND rating_id IN (
				SELECT rating_id FROM esup_evaluation WHERE state = 'pending' AND next_ms <= ? AND lease_until <= ?
				ORDER BY next_ms, created_ms LIMIT ?`+s.d.skipLocked+`)
			RETURNING `+evalCols), owner, leaseUntilMS, nowMS, nowMS, nowMS, nowMS, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEval(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, err
}

// Outcome is the result of one attempt to deliver an evaluation.
type Outcome struct {
	RatingID string
	Owner    string
	// State is Delivered, Rejected or Pending (to retry at NextMS).
	State  string
	NextMS int64
	Status int
	Error  string
	Body   string
	AtMS   int64
}

// RecordOutcome records an attempt made under owner's lease. It returns
// [ErrWrongState] when the lease was lost (another collector took the
// evaluation over).
func (s *DB) RecordOutcome(ctx context.Context, o Outcome) error {
	var delivered any
	if o.State == Delivered {
		delivered = o.AtMS
	}
	res, err := s.db.ExecContext(ctx, s.d.q(`UPDATE esup_evaluation SET state = ?, next_ms = ?, attempts = attempts + 1,
			last_status = ?, last_error = ?, last_body = ?, delivered_ms = ?, lease_owner = '', lease_until = 0
		WHERE rating_id = ? AND state = 'pending' AND lease_owner = ?`),
		o.State, o.NextMS, o.Status, o.Error, truncate(o.Body, 4096), delivered, o.RatingID, o.Owner)
	if err != nil {
		return fmt.Errorf("store: record delivery of %s: %w", o.RatingID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: record delivery of %s: %w", o.RatingID, err)
	}
	if n == 0 {
		return fmt.Errorf("store: record delivery of %s: lease lost: %w", o.RatingID, ErrWrongState)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// RetryEvaluation queues a rejected evaluation again. It returns
// [ErrNotFound] for an unknown rating id and [ErrWrongState] when the
// evaluation is not rejected.
func (s *DB) RetryEvaluation(ctx context.Context, ratingID string, nowMS int64) error {
	return s.inTx(ctx, "retry evaluation "+ratingID, func(tx *sql.Tx) error {
		var state string
		err := tx.QueryRowContext(ctx, s.d.q(`SELECT state FROM esup_evaluation WHERE rating_id = ?`), ratingID).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if state != Rejected {
			return fmt.Errorf("state %s: %w", state, ErrWrongState)
		}
		_, err = tx.ExecContext(ctx, s.d.q(`UPDATE esup_evaluation SET state = 'pending', next_ms = ?, lease_owner = '',
			lease_until = 0 WHERE rating_id = ? AND state = 'rejected'`), nowMS, ratingID)
		return err
	})
}

// Evaluations lists evaluations, newest first, of one state or all.
func (s *DB) Evaluations(ctx context.Context, state string, n int) ([]Evaluation, error) {
	q := `SELECT ` + evalCols + ` FROM esup_evaluation`
	var args []any
	if state != "" {
		q += ` WHERE state = ?`
		args = append(args, state)
	}
	q += ` ORDER BY created_ms DESC, rating_id LIMIT ?`
	args = append(args, limit(n))
	rows, err := s.db.QueryContext(ctx, s.d.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list evaluations: %w", err)
	}
	defer rows.Close()
	var out []Evaluation
	for rows.Next() {
		e, err := scanEval(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list evaluations: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list evaluations: %w", err)
	}
	return out, nil
}

// Evaluation returns the evaluation of a rating.
func (s *DB) Evaluation(ctx context.Context, ratingID string) (Evaluation, error) {
	e, err := scanEval(s.db.QueryRowContext(ctx, s.d.q(`SELECT `+evalCols+` FROM esup_evaluation WHERE rating_id = ?`), ratingID))
	if errors.Is(err, sql.ErrNoRows) {
		return Evaluation{}, ErrNotFound
	}
	if err != nil {
		return Evaluation{}, fmt.Errorf("store: evaluation %s: %w", ratingID, err)
	}
	return e, nil
}

// Backlog is the state of the evaluations queue.
type Backlog struct {
	// States counts the evaluations of each state.
	States map[string]int64 `json:"states"`
	// Undelivered counts the evaluations the sink has not handed over:
	// pending ones, and table rows not taken.
	Undelivered int64 `json:"undelivered"`
	// OldestUndeliveredMS is when the oldest of them was made (0: none).
	OldestUndeliveredMS int64 `json:"oldest_undelivered_ms"`
}

// Backlog returns the state of the evaluations queue.
func (s *DB) Backlog(ctx context.Context) (Backlog, error) {
	b := Backlog{States: map[string]int64{}}
	rows, err := s.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM esup_evaluation GROUP BY state`)
	if err != nil {
		return b, fmt.Errorf("store: backlog: %w", err)
	}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			rows.Close()
			return b, fmt.Errorf("store: backlog: %w", err)
		}
		b.States[st] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return b, fmt.Errorf("store: backlog: %w", err)
	}
	var oldest sql.NullInt64
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*), MIN(created_ms) FROM esup_evaluation
		WHERE state = 'pending' OR (state = 'table' AND taken_at IS NULL)`).Scan(&b.Undelivered, &oldest)
	if err != nil {
		return b, fmt.Errorf("store: backlog: %w", err)
	}
	b.OldestUndeliveredMS = oldest.Int64
	return b, nil
}

// ReleaseClaims gives up owner's leases of the evaluations ratingIDs that
// are still pending: they were claimed and not sent.
func (s *DB) ReleaseClaims(ctx context.Context, owner string, ratingIDs []string) (int64, error) {
	if len(ratingIDs) == 0 {
		return 0, nil
	}
	args := []any{owner}
	marks := make([]string, len(ratingIDs))
	for i, id := range ratingIDs {
		marks[i] = "?"
		args = append(args, id)
	}
	res, err := s.db.ExecContext(ctx, s.d.q(`UPDATE esup_evaluation SET lease_owner = '', lease_until = 0
		WHERE lease_owner = ? AND state = 'pending' AND rating_id IN (`+strings.Join(marks, ", ")+`)`), args...)
	if err != nil {
		return 0, fmt.Errorf("store: release %d claims of %s: %w", len(ratingIDs), owner, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: release %d claims of %s: %w", len(ratingIDs), owner, err)
	}
	return n, nil
}

// ReleaseLeases gives up the leases owner holds: a collector starting again
// under the same owner does not wait for its own leases to run out.
func (s *DB) ReleaseLeases(ctx context.Context, owner string) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.d.q(`UPDATE esup_evaluation SET lease_owner = '', lease_until = 0
		WHERE lease_owner = ? AND state = 'pending'`), owner)
	if err != nil {
		return 0, fmt.Errorf("store: release leases of %s: %w", owner, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: release leases of %s: %w", owner, err)
	}
	return n, nil
}
