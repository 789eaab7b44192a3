package store

import (
	"context"
	"fmt"
)

// The classes of a rating in the figures: what it counts as. Only Rated
// counts toward levels, rates, scores and rankings, on every screen and in
// every report; the others are shown as what they are.
const (
	// ClassRated: counted disposition, joined with its case or waiting
	// for it, and not kept out by verification.
	ClassRated = "rated"
	// ClassFailedVerification: any record that failed verification (bad
	// signature, broken chain, conflicting copy, wrong counter...).
	ClassFailedVerification = "failed_verification"
	// ClassUnverified: a counted rating held out because the hall has no
	// trusted key for its device (join state excluded).
	ClassUnverified = "unverified"
	// ClassNotCounted: a repeat, late or no_ticket press.
	ClassNotCounted = "not_counted"
	// ClassUnmatched: a counted rating no case joined in time.
	ClassUnmatched = "unmatched"
	// ClassDuplicateCase: a second rating of a case.
	ClassDuplicateCase = "duplicate_case"
	// ClassOther: a counted rating in another join state (one a later
	// version adds, such as waiting for the duty manager's assignment),
	// or with a satisfaction outside 1..5; not rated until it is.
	ClassOther = "other"
)

// classSQL is the one definition of what counts, in the order the checks
// apply: verification first, then disposition, then the join.
const classSQL = `CASE
	WHEN r.trust = 'flagged' THEN 'failed_verification'
	WHEN r.join_state = 'excluded' THEN 'unverified'
	WHEN r.disposition <> 'counted' THEN 'not_counted'
	WHEN r.join_state = 'unmatched' THEN 'unmatched'
	WHEN r.join_state = 'duplicate_case' THEN 'duplicate_case'
	WHEN r.join_state IN ('joined', 'waiting') AND r.satisfaction BETWEEN 1 AND 5 THEN 'rated'
	ELSE 'other' END`

// FigureRow is how many ratings share a counter, staff member, service
// day, level and class: the unit the report, the live view and the API
// add up.
type FigureRow struct {
	Counter string `json:"counter"`
	// Staff is the staff of the rating's case when it has one, else of
	// its ticket.
	Staff        string `json:"staff"`
	Day          string `json:"day"`
	Satisfaction int    `json:"satisfaction"`
	Class        string `json:"class"`
	N            int64  `json:"n"`
	// Unsynced are those pressed while the device's clock was not
	// synchronised; Unverified those not verified (no trusted key, or
	// failed).
	Unsynced   int64 `json:"unsynced"`
	Unverified int64 `json:"unverified"`
}

// Rated reports whether the row counts toward levels and rates.
func (f FigureRow) Rated() bool { return f.Class == ClassRated }

// FigureQuery selects the ratings of the figures.
type FigureQuery struct {
	// Hall is the hall; "" is every hall of the store.
	Hall string
	// FromMS and ToMS bound pressed_at, [FromMS, ToMS).
	FromMS, ToMS int64
	// Last also reads each counter's last rated rating and last press.
	Last bool
}

// Figures are the counted figures of a hall's ratings.
type Figures struct {
	Rows []FigureRow `json:"rows"`
	// Last is each counter's last rated rating (by pressed_at, of any
	// time); LastPress its newest record when that is not Last (a
	// repeat, a late press, a held record...), to be shown as such.
	Last      map[string]LatestRating `json:"last,omitempty"`
	LastPress map[string]LatestRating `json:"last_press,omitempty"`
}

// Figures counts the ratings of q by class: the one function behind every
// figure the collector shows or reports. Reason records are not ratings and
// are not in it; [DB.ReasonCounts] counts the reasons of the rated ones.
func (s *DB) Figures(ctx context.Context, q FigureQuery) (Figures, error) {
	var f Figures
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT r.counter, COALESCE(NULLIF(c.staff, ''), r.staff) AS st, r.service_day,
			r.satisfaction, `+classSQL+` AS class, COUNT(*),
			SUM(CASE WHEN r.clock_synced = 0 THEN 1 ELSE 0 END), SUM(CASE WHEN r.verified = 0 THEN 1 ELSE 0 END)
		FROM rating r LEFT JOIN hcase c ON c.project_no = r.case_no AND r.case_no <> ''
		WHERE (? = '' OR r.hall = ?) AND r.pressed_ms >= ? AND r.pressed_ms < ? AND r.kind = ''
		GROUP BY r.counter, st, r.service_day, r.satisfaction, class
		ORDER BY r.counter, st, r.service_day, r.satisfaction, class`), q.Hall, q.Hall, q.FromMS, q.ToMS)
	if err != nil {
		return f, fmt.Errorf("store: figures: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var x FigureRow
		if err := rows.Scan(&x.Counter, &x.Staff, &x.Day, &x.Satisfaction, &x.Class, &x.N, &x.Unsynced, &x.Unverified); err != nil {
			return f, fmt.Errorf("store: figures: %w", err)
		}
		f.Rows = append(f.Rows, x)
	}
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("store: figures: %w", err)
	}
	if !q.Last {
		return f, nil
	}
	if f.Last, err = s.lastOf(ctx, q.Hall, classSQL+` = 'rated'`); err != nil {
		return f, err
	}
	press, err := s.lastOf(ctx, q.Hall, `1 = 1`)
	if err != nil {
		return f, err
	}
	f.LastPress = map[string]LatestRating{}
	for c, p := range press {
		if l, ok := f.Last[c]; !ok || l.ID != p.ID {
			f.LastPress[c] = p
		}
	}
	return f, nil
}

// lastOf returns each counter's newest rating (by pressed_at) among those
// where cond holds.
func (s *DB) lastOf(ctx context.Context, hall, cond string) (map[string]LatestRating, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT id, device, hall, counter, seq, satisfaction, disposition, ticket,
			staff, project_no, pressed_at, service_day, join_state, case_no, stored_ms, clock_synced, verified, ticket_source, trust
		FROM (SELECT r.*, ROW_NUMBER() OVER (PARTITION BY r.counter ORDER BY r.pressed_ms DESC, r.stored_ms DESC, r.id DESC) AS rn
			FROM rating r WHERE (? = '' OR r.hall = ?) AND r.kind = '' AND `+cond+`) x
		WHERE rn = 1 ORDER BY counter`), hall, hall)
	if err != nil {
		return nil, fmt.Errorf("store: last ratings: %w", err)
	}
	rs, err := scanLatest(rows.Close, rows)
	if err != nil {
		return nil, err
	}
	out := make(map[string]LatestRating, len(rs))
	for _, r := range rs {
		out[r.Counter] = r
	}
	return out, nil
}
