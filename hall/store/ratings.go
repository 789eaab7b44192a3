package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hallrate/hallrate/record"
)

// Join states of a counted rating.
const (
	// Waiting: no case yet; joined when one arrives within the match window.
	Waiting = "waiting"
	// Joined: the rating has its case and its evaluation.
	Joined = "joined"
	// Unmatched: no case arrived within the match window; never exported.
	Unmatched = "unmatched"
	// DuplicateCase: the case already had its evaluation; kept and flagged.
	DuplicateCase = "duplicate_case"
)

// Rating is a press record as the collector stores it.
type Rating struct {
	record.Press
	// Raw is the record as received, compact JSON.
	Raw []byte
	// PressedMS is pressed_at in Unix milliseconds.
	PressedMS int64
	// ServiceDay is the hall-local date of pressed_at, 2006-01-02.
	ServiceDay string
	// Verified is true only when Trust is verified.
	Verified bool
	// Trust is the record's verification state (TrustVerified,
	// TrustUnverified, TrustFlagged; "" takes it from Verified) and TrustReason
	// its reasons, comma-separated.
	Trust, TrustReason string
	// Hold keeps a counted rating out of joins (join state excluded):
	// flagged, or unverified where only verified ratings count.
	Hold bool
	// Rank is how far the record's own checks vouch for it (RankFlagged
	// to RankVerified; 0 takes it from Trust): of two copies of one id,
	// the higher rank is the stored rating.
	Rank     int
	StoredMS int64
	// Followup, when set, is opened with the rating (a counted 差评).
	Followup *Followup
	// ReasonDueMS, when set, holds the join of a counted 差评 until its
	// reason arrives or this time passes.
	ReasonDueMS int64
}

// Ticket returns the ticket id, staff and projectNo of r's ticket.
func (r Rating) ticket() (id, staff, item, projectNo string) {
	if r.Ticket == nil {
		return "", "", "", ""
	}
	return r.Ticket.ID, r.Ticket.Staff, r.Ticket.Item, r.Ticket.ProjectNo
}

// ticketSource is the source of r's ticket: "staff" or "queue", "" for
// no ticket.
func (r Rating) ticketSource() string {
	switch {
	case r.Ticket == nil:
		return ""
	case r.Ticket.FromStaffKey():
		return record.SourceStaff
	}
	return record.SourceQueue
}

// StatusUpdate is a device's status message as received.
type StatusUpdate struct {
	Hall, Counter string
	record.Status
	Raw        []byte
	ReceivedMS int64
}

// Batch is what one delivery from the broker adds, stored in one
// transaction.
type Batch struct {
	Ratings  []Rating
	Statuses []StatusUpdate
	// Parked are messages kept aside; see [Parked].
	Parked []Parked
	// HoldUnverified is the hall's policy for a record whose chain break
	// is lifted: unverified ones stay out of joins.
	HoldUnverified bool
	// ExportOwner, when set, names the collector that writes the records
	// newly stored (and those replacing a copy) to its export file: they
	// are marked pending for it in the same commit ([DB.PendingExports]).
	ExportOwner string
}

// GapKind says what a [GapEvent] reports.
type GapKind string

// The findings of the seq audit as records arrive.
const (
	GapOpened GapKind = "gap"
	GapFilled GapKind = "gap filled"
)

// GapEvent is a finding of the seq audit about newly stored records.
type GapEvent struct {
	Kind          GapKind
	Device, Epoch string
	Seqs          Range
}

// Saved is what [DB.SaveBatch] did.
type Saved struct {
	// New are the ratings stored by this batch, in seq order per device;
	// the others were stored before.
	New    []Rating
	Events []GapEvent
	// Trust are the chain breaks and conflicting copies found.
	Trust []TrustEvent
	// Replaced are the records that took the place of a stored copy of
	// their id that ranked lower (a forgery or an unsigned copy).
	Replaced []Rating
	// Reasons are the reasons this batch joined to their ratings.
	Reasons []AttachedReason
}

// maxRows bounds the rows of one multi-row insert.
const maxRows = 200

const ratingCols = `id, device, hall, counter, epoch, seq, button, label, satisfaction, disposition,
	ticket, staff, item, project_no, pressed_at, pressed_ms, service_day, clock_synced, verified,
	stored_ms, join_state, raw, trust, trust_reason, prev, chain_hash, signed, ticket_source, boot_id, uptime_ms, copy_rank,
	kind, for_id, reason_code, reason_label, reason_due_ms`

// SaveBatch stores the batch in one transaction: each rating once, keyed on
// its id; the per-epoch counts and highest seq; the devices' last status;
// the follow-ups of new bad ratings. It returns the ratings that were new.
func (s *DB) SaveBatch(ctx context.Context, b Batch) (Saved, error) {
	var saved Saved
	if len(b.Ratings) == 0 && len(b.Statuses) == 0 && len(b.Parked) == 0 {
		return saved, nil
	}
	// One row per id, in seq order, so a batch's own duplicates and order
	// do not matter.
	rs := slices.Clone(b.Ratings)
	slices.SortStableFunc(rs, func(x, y Rating) int {
		return cmp.Or(cmp.Compare(x.Device, y.Device), cmp.Compare(x.Epoch, y.Epoch), cmp.Compare(x.Seq, y.Seq))
	})
	rs, extra := bestCopies(rs)
	err := s.inTx(ctx, "save batch", func(tx *sql.Tx) error {
		saved = Saved{}
		isNew := map[string]bool{}
		for chunk := range slices.Chunk(rs, maxRows) {
			ids, err := s.insertRatings(ctx, tx, chunk)
			if err != nil {
				return err
			}
			for _, id := range ids {
				isNew[id] = true
			}
		}
		for _, r := range rs {
			if isNew[r.ID] {
				saved.New = append(saved.New, r)
			}
		}
		ev, err := s.addToEpochs(ctx, tx, saved.New)
		if err != nil {
			return err
		}
		saved.Events = ev
		if saved.Trust, saved.Replaced, err = s.checkTrust(ctx, tx, b, rs, extra, saved.New, isNew); err != nil {
			return err
		}
		if b.ExportOwner != "" {
			var ids []string
			for _, r := range append(slices.Clone(saved.New), saved.Replaced...) {
				ids = append(ids, r.ID)
			}
			if err := s.markExports(ctx, tx, b.ExportOwner, ids); err != nil {
				return err
			}
		}
		if err := s.openFollowups(ctx, tx, saved.New); err != nil {
			return err
		}
		if saved.Reasons, err = s.attachReasons(ctx, tx, saved.New); err != nil {
			return err
		}
		if err := s.park(ctx, tx, b.Parked); err != nil {
			return err
		}
		return s.saveStatuses(ctx, tx, b.Statuses)
	})
	if err != nil {
		return Saved{}, err
	}
	return saved, nil
}

func (s *DB) insertRatings(ctx context.Context, tx *sql.Tx, rs []Rating) ([]string, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	const n = 36
	var sb strings.Builder
	sb.WriteString("INSERT INTO rating (" + ratingCols + ") VALUES ")
	args := make([]any, 0, n*len(rs))
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")"
	for i, r := range rs {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(row)
		args = append(args, r.columns()...)
	}
	sb.WriteString(" ON CONFLICT (id) DO NOTHING RETURNING id")
	rows, err := tx.QueryContext(ctx, s.d.q(sb.String()), args...)
	if err != nil {
		return nil, fmt.Errorf("insert %d ratings: %w", len(rs), err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("insert ratings: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert ratings: %w", err)
	}
	return ids, nil
}

// trust is r's trust state: as decided, or from Verified where the caller
// decided only that (tests, tools).
func (r Rating) trust() string {
	switch {
	case r.Trust != "":
		return r.Trust
	case r.Verified:
		return TrustVerified
	}
	return TrustUnverified
}

// joinState is the join state a new rating starts in.
func (r Rating) joinState() string {
	switch {
	case r.Disposition != record.Counted:
		return ""
	case r.Hold:
		return Excluded
	}
	return Waiting
}

// columns are r's values of ratingCols.
func (r Rating) columns() []any {
	ticket, staff, item, projectNo := r.ticket()
	reasonCode, reasonLabel := reasonOf(r.Press)
	trust := r.trust()
	return []any{r.ID, r.Device, r.Hall, r.Counter, r.Epoch, int64(r.Seq), r.Button, r.Label,
		r.Satisfaction, string(r.Disposition), ticket, staff, item, projectNo, r.PressedAt, r.PressedMS,
		r.ServiceDay, boolInt(r.ClockSynced), boolInt(r.Verified && trust == TrustVerified), r.StoredMS, r.joinState(), string(r.Raw),
		trust, r.TrustReason, r.Prev, r.ChainHash(), boolInt(r.Sig != ""), r.ticketSource(), r.BootID, r.UptimeMS, r.rank(),
		kindOf(r.Press), r.For, reasonCode, reasonLabel, r.ReasonDueMS}
}

// bestCopies keeps one copy of each id of rs (sorted by device, epoch and
// seq): the highest ranked, the first among equals; extra are the others.
func bestCopies(rs []Rating) (best, extra []Rating) {
	for i := 0; i < len(rs); {
		j, top := i+1, i
		for ; j < len(rs) && rs[j].ID == rs[i].ID; j++ {
			if rs[j].rank() > rs[top].rank() {
				top = j
			}
		}
		for k := i; k < j; k++ {
			if k != top {
				extra = append(extra, rs[k])
			}
		}
		best = append(best, rs[top])
		i = j
	}
	return best, extra
}

// addToEpochs counts the new records into their epochs and reports the
// gaps they open or fill. The events are for the log; the audit itself is
// computed from the stored records, so it holds with several collectors.
func (s *DB) addToEpochs(ctx context.Context, tx *sql.Tx, rs []Rating) ([]GapEvent, error) {
	var events []GapEvent
	for i := 0; i < len(rs); {
		j := i
		for j < len(rs) && rs[j].Device == rs[i].Device && rs[j].Epoch == rs[i].Epoch {
			j++
		}
		group := rs[i:j]
		i = j
		dev, epoch := group[0].Device, group[0].Epoch
		var maxSeq int64
		err := tx.QueryRowContext(ctx, s.d.q(`SELECT max_seq FROM device_epoch WHERE device = ? AND epoch = ?`), dev, epoch).Scan(&maxSeq)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("read epoch %s/%s: %w", dev, epoch, err)
		}
		top := uint64(maxSeq)
		for _, r := range group {
			switch {
			case r.Seq > top+1:
				events = append(events, GapEvent{GapOpened, dev, epoch, Range{top + 1, r.Seq - 1}})
				top = r.Seq
			case r.Seq == top+1:
				top = r.Seq
			default:
				events = append(events, GapEvent{GapFilled, dev, epoch, Range{r.Seq, r.Seq}})
			}
		}
		last := group[len(group)-1]
		_, err = tx.ExecContext(ctx, s.d.q(`INSERT INTO device_epoch (device, epoch, received, max_seq, first_ms, last_ms)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (device, epoch) DO UPDATE SET received = device_epoch.received + excluded.received,
				max_seq = `+s.d.greatest+`(device_epoch.max_seq, excluded.max_seq), last_ms = excluded.last_ms`),
			dev, epoch, len(group), int64(top), last.StoredMS, last.StoredMS)
		if err != nil {
			return nil, fmt.Errorf("count epoch %s/%s: %w", dev, epoch, err)
		}
		// A device heard only through its records still has a row.
		_, err = tx.ExecContext(ctx, s.d.q(`INSERT INTO device (device, hall, counter) VALUES (?, ?, ?)
			ON CONFLICT (device) DO NOTHING`), dev, last.Hall, last.Counter)
		if err != nil {
			return nil, fmt.Errorf("add device %s: %w", dev, err)
		}
	}
	return events, nil
}

func (s *DB) saveStatuses(ctx context.Context, tx *sql.Tx, sts []StatusUpdate) error {
	for _, st := range sts {
		var lastSeq, pending any
		epoch := ""
		if st.Epoch != "" && st.LastSeq != nil {
			epoch, lastSeq = st.Epoch, int64(*st.LastSeq)
			pending = int64(0)
			if st.Pending != nil {
				pending = *st.Pending
			}
		}
		full := st.OutboxFull != nil && *st.OutboxFull
		// A status without epoch and last_seq (the Last Will) keeps the
		// last audited ones.
		_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO device (device, hall, counter, online, version, boot_id, epoch,
				last_seq, pending, outbox_full, status_at, status_ms, status, pubkey, first_key)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (device) DO UPDATE SET hall = excluded.hall, counter = excluded.counter,
				online = excluded.online,
				version = CASE WHEN excluded.version = '' THEN device.version ELSE excluded.version END,
				boot_id = CASE WHEN excluded.boot_id = '' THEN device.boot_id ELSE excluded.boot_id END,
				epoch = CASE WHEN excluded.epoch = '' THEN device.epoch ELSE excluded.epoch END,
				last_seq = COALESCE(excluded.last_seq, device.last_seq),
				pending = COALESCE(excluded.pending, device.pending),
				outbox_full = excluded.outbox_full, status_at = excluded.status_at,
				status_ms = excluded.status_ms, status = excluded.status,
				pubkey = CASE WHEN excluded.pubkey = '' THEN device.pubkey ELSE excluded.pubkey END,
				first_key = CASE WHEN device.first_key = '' THEN excluded.pubkey ELSE device.first_key END`),
			st.Device, st.Hall, st.Counter, boolInt(st.Online), st.Version, st.BootID, epoch,
			lastSeq, pending, boolInt(full), st.At, st.ReceivedMS, string(st.Raw), st.PubKey, st.PubKey)
		if err != nil {
			return fmt.Errorf("save status of %s: %w", st.Device, err)
		}
	}
	return nil
}

// RatingFilter selects ratings to list.
type RatingFilter struct {
	// JoinState, when set, is one of the join states.
	JoinState string
	// Disposition, when set, is a record disposition.
	Disposition string
	// Trust, when set, is a trust state: verified, unverified or flagged.
	Trust string
	Limit int
}

// StoredRating is a stored rating as listed.
type StoredRating struct {
	ID           string `json:"id"`
	Device       string `json:"device"`
	Hall         string `json:"hall"`
	Counter      string `json:"counter"`
	Seq          int64  `json:"seq"`
	Satisfaction int    `json:"satisfaction"`
	Disposition  string `json:"disposition"`
	Ticket       string `json:"ticket"`
	TicketSource string `json:"ticket_source,omitempty"`
	Staff        string `json:"staff"`
	ProjectNo    string `json:"projectNo"`
	PressedAt    string `json:"pressed_at"`
	ServiceDay   string `json:"service_day"`
	JoinState    string `json:"join_state,omitempty"`
	JoinReason   string `json:"join_reason,omitempty"`
	CaseNo       string `json:"case,omitempty"`
	StoredMS     int64  `json:"stored_ms"`
	Trust        string `json:"trust"`
	TrustReason  string `json:"trust_reason,omitempty"`
	// Candidates are the cases an ambiguous rating may belong to.
	Candidates []Case `json:"candidates,omitempty"`
	// AssignedBy and AssignedAt say who assigned an ambiguous rating to
	// its case, and when.
	AssignedBy string `json:"assigned_by,omitempty"`
	AssignedAt string `json:"assigned_at,omitempty"`
	// Kind is "reason" for a reason record (For names its rating), absent
	// for a rating; ReasonCode and ReasonText are the reason of a reason
	// record, or the reason attached to a rating.
	Kind       string `json:"kind,omitempty"`
	For        string `json:"for,omitempty"`
	ReasonCode string `json:"reasonCode,omitempty"`
	ReasonText string `json:"reasonText,omitempty"`
}

// Ratings lists stored ratings, newest first.
func (s *DB) Ratings(ctx context.Context, f RatingFilter) ([]StoredRating, error) {
	q := `SELECT id, device, hall, counter, seq, satisfaction, disposition, ticket, staff, project_no,
		pressed_at, service_day, join_state, case_no, stored_ms, trust, trust_reason, ticket_source, join_reason,
		assigned_by, assigned_ms, kind, for_id, reason_code, reason_label FROM rating WHERE 1 = 1`
	var args []any
	if f.JoinState != "" {
		q += ` AND join_state = ?`
		args = append(args, f.JoinState)
	}
	if f.Disposition != "" {
		q += ` AND disposition = ?`
		args = append(args, f.Disposition)
	}
	if f.Trust != "" {
		q += ` AND trust = ?`
		args = append(args, f.Trust)
	}
	q += ` ORDER BY stored_ms DESC, id LIMIT ?`
	args = append(args, limit(f.Limit))
	rows, err := s.db.QueryContext(ctx, s.d.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list ratings: %w", err)
	}
	defer rows.Close()
	var out []StoredRating
	for rows.Next() {
		var r StoredRating
		var assigned sql.NullInt64
		if err := rows.Scan(&r.ID, &r.Device, &r.Hall, &r.Counter, &r.Seq, &r.Satisfaction, &r.Disposition,
			&r.Ticket, &r.Staff, &r.ProjectNo, &r.PressedAt, &r.ServiceDay, &r.JoinState, &r.CaseNo, &r.StoredMS,
			&r.Trust, &r.TrustReason, &r.TicketSource, &r.JoinReason, &r.AssignedBy, &assigned,
			&r.Kind, &r.For, &r.ReasonCode, &r.ReasonText); err != nil {
			return nil, fmt.Errorf("store: list ratings: %w", err)
		}
		if assigned.Valid {
			r.AssignedAt = time.UnixMilli(assigned.Int64).UTC().Format(time.RFC3339)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list ratings: %w", err)
	}
	return out, nil
}

// CountRatings returns how many ratings are stored.
func (s *DB) CountRatings(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM rating`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count ratings: %w", err)
	}
	return n, nil
}

// limit bounds a list: 100 by default, 10,000 at most.
func limit(n int) int {
	if n <= 0 {
		return 100
	}
	return min(n, 10000)
}

// FirstKeys returns the first key each device announced in its status
// (base64), for trust on first use.
func (s *DB) FirstKeys(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT device, first_key FROM device WHERE first_key <> ''`)
	if err != nil {
		return nil, fmt.Errorf("store: first keys: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var d, k string
		if err := rows.Scan(&d, &k); err != nil {
			return nil, fmt.Errorf("store: first keys: %w", err)
		}
		out[d] = k
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: first keys: %w", err)
	}
	return out, nil
}
