package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
)

// Case is a case (办件) of the e-supervision system, with the contract's
// field names.
type Case struct {
	ProjectNo  string `json:"projectNo"`
	TaskCode   string `json:"taskCode,omitempty"`
	TaskName   string `json:"taskName,omitempty"`
	DeptCode   string `json:"deptCode,omitempty"`
	DeptName   string `json:"deptName,omitempty"`
	Hall       string `json:"hall"`
	Counter    string `json:"counter"`
	Ticket     string `json:"ticket"`
	Staff      string `json:"staff,omitempty"`
	StaffName  string `json:"staffName,omitempty"`
	AcceptedAt string `json:"acceptedAt,omitempty"`
	FinishedAt string `json:"finishedAt,omitempty"`

	// Filled in by the caller from the fields above.
	AcceptedMS *int64 `json:"-"`
	FinishedMS *int64 `json:"-"`
	ServiceDay string `json:"-"`
	ReceivedMS int64  `json:"-"`
	// ID is the store's row id, set when read.
	ID int64 `json:"-"`
}

// CaseConflictError is a case whose projectNo is stored with other
// content: cases are inserted, and changed only by [DB.UpdateCase].
type CaseConflictError struct{ ProjectNo string }

func (e *CaseConflictError) Error() string {
	return "case " + e.ProjectNo + " is stored with other content; change it with an explicit update"
}

// Is makes a CaseConflictError an [ErrConflict].
func (e *CaseConflictError) Is(target error) bool { return target == ErrConflict }

// sameContent reports whether two cases have the same contract fields.
func sameContent(a, b Case) bool {
	return a.ProjectNo == b.ProjectNo && a.TaskCode == b.TaskCode && a.TaskName == b.TaskName &&
		a.DeptCode == b.DeptCode && a.DeptName == b.DeptName && a.Hall == b.Hall && a.Counter == b.Counter &&
		a.Ticket == b.Ticket && a.Staff == b.Staff && a.StaffName == b.StaffName &&
		a.AcceptedAt == b.AcceptedAt && a.FinishedAt == b.FinishedAt
}

// SaveCases inserts cases in one transaction: all or none. A case stored
// already with the same content is left as it is (sending a batch again is
// harmless); one stored with other content fails the whole batch with a
// [*CaseConflictError] naming it.
func (s *DB) SaveCases(ctx context.Context, cs []Case) error {
	_, err := s.SaveCaseSeq(ctx, func(yield func(Case, error) bool) {
		for _, c := range cs {
			if !yield(c, nil) {
				return
			}
		}
	})
	return err
}

// SaveCaseSeq is [DB.SaveCases] of the cases seq yields, read one at a
// time inside the transaction, so a large batch is never held in memory;
// an error seq yields fails the batch. It returns how many cases it saw.
func (s *DB) SaveCaseSeq(ctx context.Context, seq iter.Seq2[Case, error]) (int, error) {
	n := 0
	err := s.inTx(ctx, "save cases", func(tx *sql.Tx) error {
		n = 0
		if err := s.lockJoins(tx); err != nil {
			return err
		}
		for c, err := range seq {
			if err != nil {
				return err
			}
			n++
			res, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO hcase (project_no, task_code, task_name, dept_code, dept_name,
					hall, counter, ticket, staff, staff_name, accepted_at, finished_at, accepted_ms, finished_ms,
					service_day, received_ms)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (project_no) DO NOTHING`),
				c.ProjectNo, c.TaskCode, c.TaskName, c.DeptCode, c.DeptName, c.Hall, c.Counter, c.Ticket,
				c.Staff, c.StaffName, c.AcceptedAt, c.FinishedAt, c.AcceptedMS, c.FinishedMS, c.ServiceDay, c.ReceivedMS)
			if err != nil {
				return fmt.Errorf("case %s: %w", c.ProjectNo, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("case %s: %w", c.ProjectNo, err)
			}
			if n == 1 {
				continue
			}
			old, err := scanCase(tx.QueryRowContext(ctx, s.d.q(`SELECT `+caseCols+` FROM hcase WHERE project_no = ?`), c.ProjectNo))
			if err != nil {
				return fmt.Errorf("case %s: %w", c.ProjectNo, err)
			}
			if !sameContent(old, c) {
				return &CaseConflictError{ProjectNo: c.ProjectNo}
			}
		}
		return nil
	})
	return n, err
}

// CaseChange is an explicit update of a stored case, kept for the audit.
type CaseChange struct {
	ProjectNo string `json:"projectNo"`
	ChangedMS int64  `json:"changed_ms"`
	// By says who changed it: the API client's address, or the command's
	// user.
	By  string `json:"by"`
	Old Case   `json:"old"`
	New Case   `json:"new"`
}

// UpdateCase replaces the fields of a stored case and records the change
// with who made it and when. It returns [ErrNotFound] when the case is not
// stored. A rating joined to the case already keeps its evaluation.
func (s *DB) UpdateCase(ctx context.Context, c Case, by string, nowMS int64) (CaseChange, error) {
	ch := CaseChange{ProjectNo: c.ProjectNo, ChangedMS: nowMS, By: by, New: c}
	err := s.inTx(ctx, "update case "+c.ProjectNo, func(tx *sql.Tx) error {
		if err := s.lockJoins(tx); err != nil {
			return err
		}
		old, err := scanCase(tx.QueryRowContext(ctx, s.d.q(`SELECT `+caseCols+` FROM hcase WHERE project_no = ?`), c.ProjectNo))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("case %s: %w", c.ProjectNo, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("case %s: %w", c.ProjectNo, err)
		}
		ch.Old = old
		if _, err := tx.ExecContext(ctx, s.d.q(`UPDATE hcase SET task_code = ?, task_name = ?, dept_code = ?, dept_name = ?,
				hall = ?, counter = ?, ticket = ?, staff = ?, staff_name = ?, accepted_at = ?, finished_at = ?,
				accepted_ms = ?, finished_ms = ?, service_day = ? WHERE project_no = ?`),
			c.TaskCode, c.TaskName, c.DeptCode, c.DeptName, c.Hall, c.Counter, c.Ticket, c.Staff, c.StaffName,
			c.AcceptedAt, c.FinishedAt, c.AcceptedMS, c.FinishedMS, c.ServiceDay, c.ProjectNo); err != nil {
			return fmt.Errorf("case %s: %w", c.ProjectNo, err)
		}
		oldJSON, err := json.Marshal(old)
		if err != nil {
			return fmt.Errorf("case %s: %w", c.ProjectNo, err)
		}
		newJSON, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("case %s: %w", c.ProjectNo, err)
		}
		if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO case_change (project_no, changed_ms, changed_by, old_case, new_case)
				VALUES (?, ?, ?, ?, ?)`), c.ProjectNo, nowMS, by, string(oldJSON), string(newJSON)); err != nil {
			return fmt.Errorf("case %s: audit: %w", c.ProjectNo, err)
		}
		return nil
	})
	return ch, err
}

// CaseChanges returns the recorded updates of a case, oldest first.
func (s *DB) CaseChanges(ctx context.Context, projectNo string) ([]CaseChange, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT changed_ms, changed_by, old_case, new_case FROM case_change
		WHERE project_no = ? ORDER BY id`), projectNo)
	if err != nil {
		return nil, fmt.Errorf("store: changes of case %s: %w", projectNo, err)
	}
	defer rows.Close()
	var out []CaseChange
	for rows.Next() {
		ch := CaseChange{ProjectNo: projectNo}
		var o, n string
		if err := rows.Scan(&ch.ChangedMS, &ch.By, &o, &n); err != nil {
			return nil, fmt.Errorf("store: changes of case %s: %w", projectNo, err)
		}
		if err := json.Unmarshal([]byte(o), &ch.Old); err != nil {
			return nil, fmt.Errorf("store: changes of case %s: %w", projectNo, err)
		}
		if err := json.Unmarshal([]byte(n), &ch.New); err != nil {
			return nil, fmt.Errorf("store: changes of case %s: %w", projectNo, err)
		}
		out = append(out, ch)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: changes of case %s: %w", projectNo, err)
	}
	return out, nil
}

const caseCols = `id, project_no, task_code, task_name, dept_code, dept_name, hall, counter, ticket, staff,
	staff_name, accepted_at, finished_at, accepted_ms, finished_ms, service_day, received_ms`

func scanCase(sc interface{ Scan(...any) error }) (Case, error) {
	var c Case
	var acc, fin sql.NullInt64
	err := sc.Scan(&c.ID, &c.ProjectNo, &c.TaskCode, &c.TaskName, &c.DeptCode, &c.DeptName, &c.Hall, &c.Counter,
		&c.Ticket, &c.Staff, &c.StaffName, &c.AcceptedAt, &c.FinishedAt, &acc, &fin, &c.ServiceDay, &c.ReceivedMS)
	if acc.Valid {
		c.AcceptedMS = &acc.Int64
	}
	if fin.Valid {
		c.FinishedMS = &fin.Int64
	}
	return c, err
}

// CountCases returns how many cases are stored.
func (s *DB) CountCases(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM hcase`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count cases: %w", err)
	}
	return n, nil
}

// WaitingRating is a counted rating waiting for its case.
type WaitingRating struct {
	ID, Device, Hall, Counter, Ticket, Staff, ProjectNo string
	Satisfaction                                        int
	PressedAt                                           string
	PressedMS                                           int64
	ServiceDay                                          string
	Verified                                            bool
	JoinMark                                            int64
	// ReasonCode and ReasonText are the reason the citizen gave for a
	// 差评, when one arrived.
	ReasonCode, ReasonText string
}

// JoinTx is a transaction of the join: it sees and changes waiting ratings,
// cases and evaluations, and holds the join lock of [DB.Join].
type JoinTx struct {
	ctx context.Context
	tx  *sql.Tx
	d   dialect
}

// Join runs fn in one transaction that holds the join lock.
func (s *DB) Join(ctx context.Context, fn func(*JoinTx) error) error {
	return s.inTx(ctx, "join", func(tx *sql.Tx) error {
		if err := s.lockJoins(tx); err != nil {
			return err
		}
		return fn(&JoinTx{ctx: ctx, tx: tx, d: s.d})
	})
}

// Joinable returns up to n waiting ratings that may join at nowMS: those
// whose ticket carried a projectNo, and those with a case of their hall,
// counter, ticket and service day they have not examined yet; a 差评 only
// once its reason arrived or its wait for it is over.
func (j *JoinTx) Joinable(n int, nowMS int64) ([]WaitingRating, error) {
	rows, err := j.tx.QueryContext(j.ctx, j.d.q(`SELECT r.id, r.device, r.hall, r.counter, r.ticket, r.staff, r.project_no,
			r.satisfaction, r.pressed_at, r.pressed_ms, r.service_day, r.verified, r.join_mark, r.reason_code, r.reason_label
		FROM rating r WHERE r.join_state = 'waiting' AND (r.reason_due_ms <= ? OR r.reason_id <> '') AND (r.project_no <> '' OR EXISTS (
			SELECT 1 FROM hcase c WHERE c.hall = r.hall AND c.counter = r.counter AND c.ticket = r.ticket
				AND c.service_day = r.service_day AND c.id > r.join_mark))
		ORDER BY r.stored_ms, r.id LIMIT ?`), nowMS, n)
	if err != nil {
		return nil, fmt.Errorf("joinable ratings: %w", err)
	}
	defer rows.Close()
	var out []WaitingRating
	for rows.Next() {
		var w WaitingRating
		var verified int
		if err := rows.Scan(&w.ID, &w.Device, &w.Hall, &w.Counter, &w.Ticket, &w.Staff, &w.ProjectNo, &w.Satisfaction,
			&w.PressedAt, &w.PressedMS, &w.ServiceDay, &verified, &w.JoinMark, &w.ReasonCode, &w.ReasonText); err != nil {
			return nil, fmt.Errorf("joinable ratings: %w", err)
		}
		w.Verified = verified == 1
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("joinable ratings: %w", err)
	}
	return out, nil
}

// Cases returns the cases of a hall, counter, ticket and service day.
func (j *JoinTx) Cases(hall, counter, ticket, day string) ([]Case, error) {
	rows, err := j.tx.QueryContext(j.ctx, j.d.q(`SELECT `+caseCols+` FROM hcase
		WHERE hall = ? AND counter = ? AND ticket = ? AND service_day = ? ORDER BY id`), hall, counter, ticket, day)
	if err != nil {
		return nil, fmt.Errorf("cases of %s/%s/%s: %w", hall, counter, ticket, err)
	}
	defer rows.Close()
	var out []Case
	for rows.Next() {
		c, err := scanCase(rows)
		if err != nil {
			return nil, fmt.Errorf("cases of %s/%s/%s: %w", hall, counter, ticket, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cases of %s/%s/%s: %w", hall, counter, ticket, err)
	}
	return out, nil
}

// CaseByNo returns the case of a projectNo, if one is known.
func (j *JoinTx) CaseByNo(projectNo string) (Case, bool, error) {
	c, err := scanCase(j.tx.QueryRowContext(j.ctx, j.d.q(`SELECT `+caseCols+` FROM hcase WHERE project_no = ?`), projectNo))
	if errors.Is(err, sql.ErrNoRows) {
		return Case{}, false, nil
	}
	if err != nil {
		return Case{}, false, fmt.Errorf("case %s: %w", projectNo, err)
	}
	return c, true, nil
}

// AddEvaluation adds the evaluation of a case and marks its rating joined.
// When the case already has an evaluation it adds nothing, flags the rating
// duplicate_case and returns false.
func (j *JoinTx) AddEvaluation(e Evaluation) (bool, error) {
	res, err := j.tx.ExecContext(j.ctx, j.d.q(`INSERT INTO esup_evaluation (rating_id, project_no, hall, counter, ticket,
			device, pro_manager, satisfaction, assess_time, payload, state, next_ms, created_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		e.RatingID, e.ProjectNo, e.Hall, e.Counter, e.Ticket, e.Device, e.ProManager, e.Satisfaction,
		e.AssessTime, string(e.Payload), e.State, e.CreatedMS, e.CreatedMS)
	if err != nil {
		return false, fmt.Errorf("add evaluation of %s: %w", e.RatingID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("add evaluation of %s: %w", e.RatingID, err)
	}
	state := Joined
	if n == 0 {
		state = DuplicateCase
	}
	if err := j.setJoin(e.RatingID, state, e.ProjectNo, 0); err != nil {
		return false, err
	}
	return n == 1, nil
}

// Examined notes that a rating examined the cases up to mark without a
// join: it is looked at again when a newer case arrives.
func (j *JoinTx) Examined(ratingID string, mark int64) error {
	return j.setJoin(ratingID, Waiting, "", mark)
}

func (j *JoinTx) setJoin(ratingID, state, caseNo string, mark int64) error {
	_, err := j.tx.ExecContext(j.ctx, j.d.q(`UPDATE rating SET join_state = ?, case_no = ?,
		join_mark = `+j.d.greatest+`(join_mark, ?) WHERE id = ?`), state, caseNo, mark, ratingID)
	if err != nil {
		return fmt.Errorf("mark rating %s %s: %w", ratingID, state, err)
	}
	return nil
}

// ExpireWaiting marks unmatched the ratings still waiting that were stored
// before beforeMS, and returns how many.
func (j *JoinTx) ExpireWaiting(beforeMS int64) (int64, error) {
	res, err := j.tx.ExecContext(j.ctx, j.d.q(`UPDATE rating SET join_state = 'unmatched', join_reason = 'no_case'
		WHERE join_state = 'waiting' AND stored_ms < ?`), beforeMS)
	if err != nil {
		return 0, fmt.Errorf("expire waiting ratings: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("expire waiting ratings: %w", err)
	}
	return n, nil
}
