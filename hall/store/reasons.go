package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/hallrate/hallrate/record"
)

// A reason record ("kind":"reason") is stored in the rating table like
// every record, so the seq audit, the chain and the trust checks see it;
// it has no disposition and no join state, so nothing counts or exports
// it. Its reason is copied onto the rating it names (reason_id,
// reason_code, reason_label) and onto that rating's follow-up, whichever
// of the two records arrives first.
//
// The join of a 差评 and its alert wait for the reason until reason_due_ms
// (0: they do not wait), then go without one.
func migrateReasons(tx *sql.Tx, d dialect) error {
	return execAll(tx, d,
		`ALTER TABLE rating ADD COLUMN kind TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN for_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN reason_code TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN reason_label TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN reason_id TEXT NOT NULL DEFAULT ''`,
		`CREATE INDEX rating_for ON rating (for_id)`,
		`ALTER TABLE rating ADD COLUMN reason_due_ms BIGINT NOT NULL DEFAULT 0`,
		`ALTER TABLE followup ADD COLUMN reason_code TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE followup ADD COLUMN reason_label TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE followup ADD COLUMN reason_due_ms BIGINT NOT NULL DEFAULT 0`,
	)
}

// kindOf is the kind column of a record: "reason" or "" (a rating).
func kindOf(p record.Press) string {
	if p.IsReason() {
		return string(record.KindReason)
	}
	return ""
}

// reasonOf returns the code and label of a reason record ("" for a rating).
func reasonOf(p record.Press) (code, label string) {
	if p.Reason == nil {
		return "", ""
	}
	return p.Reason.Code, p.Reason.Label
}

// AttachedReason is a reason joined to its rating by [DB.SaveBatch].
type AttachedReason struct {
	RatingID, ReasonID, Code, Label string
}

// attachReasons joins the new records of a batch with their partners: a
// new reason to its rating, a new counted rating to a reason stored
// before it (records of several collectors may be stored out of order).
// The first reason of a rating wins; a held reason (flagged, or unverified
// where only verified ones count) attaches to nothing.
func (s *DB) attachReasons(ctx context.Context, tx *sql.Tx, rs []Rating) ([]AttachedReason, error) {
	var pairs []AttachedReason
	var counted []any
	for _, r := range rs {
		switch {
		case r.IsReason() && !r.Hold:
			code, label := reasonOf(r.Press)
			pairs = append(pairs, AttachedReason{RatingID: r.For, ReasonID: r.ID, Code: code, Label: label})
		case !r.IsReason() && r.Disposition == record.Counted:
			counted = append(counted, r.ID)
		}
	}
	for chunk := range chunks(counted, maxRows) {
		rows, err := tx.QueryContext(ctx, s.d.q(`SELECT for_id, id, reason_code, reason_label FROM rating
			WHERE kind = 'reason' AND trust <> 'flagged' AND join_state = '' AND for_id IN (`+
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`) ORDER BY seq`), chunk...)
		if err != nil {
			return nil, fmt.Errorf("find reasons: %w", err)
		}
		for rows.Next() {
			var a AttachedReason
			if err := rows.Scan(&a.RatingID, &a.ReasonID, &a.Code, &a.Label); err != nil {
				rows.Close()
				return nil, fmt.Errorf("find reasons: %w", err)
			}
			pairs = append(pairs, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("find reasons: %w", err)
		}
	}
	var attached []AttachedReason
	for _, a := range pairs {
		res, err := tx.ExecContext(ctx, s.d.q(`UPDATE rating SET reason_id = ?, reason_code = ?, reason_label = ?
			WHERE id = ? AND kind = '' AND reason_id = ''`), a.ReasonID, a.Code, a.Label, a.RatingID)
		if err != nil {
			return nil, fmt.Errorf("attach reason %s: %w", a.ReasonID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			continue // no such rating yet, or it has its reason already
		}
		if _, err := tx.ExecContext(ctx, s.d.q(`UPDATE followup SET reason_code = ?, reason_label = ?
			WHERE rating_id = ? AND reason_code = ''`), a.Code, a.Label, a.RatingID); err != nil {
			return nil, fmt.Errorf("attach reason %s to its follow-up: %w", a.ReasonID, err)
		}
		attached = append(attached, a)
	}
	return attached, nil
}

func chunks(xs []any, n int) func(func([]any) bool) {
	return func(yield func([]any) bool) {
		for i := 0; i < len(xs); i += n {
			if !yield(xs[i:min(i+n, len(xs))]) {
				return
			}
		}
	}
}

// ReasonCount is how many counted ratings of one counter and staff member
// carry one reason: the unit of "不满意原因分布".
type ReasonCount struct {
	Counter string `json:"counter"`
	Staff   string `json:"staff"`
	Code    string `json:"code"`
	Label   string `json:"label"`
	N       int64  `json:"n"`
}

// ReasonCounts counts the reasons of the rated ratings (class rated, as
// [DB.Figures] counts them) of one hall pressed in [fromMS, toMS), by
// counter, staff (of the case, else of the ticket) and reason. Ratings
// without a reason are not in it.
func (s *DB) ReasonCounts(ctx context.Context, hall string, fromMS, toMS int64) ([]ReasonCount, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT r.counter, COALESCE(NULLIF(c.staff, ''), r.staff) AS st,
			r.reason_code, MAX(r.reason_label), COUNT(*)
		FROM rating r LEFT JOIN hcase c ON c.project_no = r.case_no AND r.case_no <> ''
		WHERE r.hall = ? AND r.pressed_ms >= ? AND r.pressed_ms < ? AND r.kind = '' AND r.reason_code <> ''
			AND `+classSQL+` = 'rated'
		GROUP BY r.counter, st, r.reason_code ORDER BY r.counter, st, r.reason_code`), hall, fromMS, toMS)
	if err != nil {
		return nil, fmt.Errorf("store: reason counts: %w", err)
	}
	defer rows.Close()
	var out []ReasonCount
	for rows.Next() {
		var c ReasonCount
		if err := rows.Scan(&c.Counter, &c.Staff, &c.Code, &c.Label, &c.N); err != nil {
			return nil, fmt.Errorf("store: reason counts: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reason counts: %w", err)
	}
	return out, nil
}
