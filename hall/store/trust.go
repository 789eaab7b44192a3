package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// Trust states of a stored record, as hall/trust decides them; the store
// keeps them as text and adds what needs the records around one: the
// chain and conflicting copies.
const (
	TrustVerified   = "verified"
	TrustUnverified = "unverified"
	TrustFlagged    = "flagged"
)

// Reasons the store itself finds (hall/trust names the same).
const (
	ReasonChainBreak = "chain_break"
	ReasonConflict   = "conflict"
	// ReasonReplaced is the event of a stored copy that a higher ranked
	// copy of its id took the place of; the displaced copy is evidence.
	ReasonReplaced = "replaced"
)

// Ranks of a copy of a record, by what its own checks prove. Of two copies
// of one id, the higher rank is the stored rating whichever came first; a
// copy of the same rank as the stored one cannot be told from it, and both
// are flagged conflict.
const (
	// RankFlagged: a check of its own failed (bad signature, unsigned
	// where the device has a key, wrong counter).
	RankFlagged = 0
	// RankUnproven: nothing proves who made it (no key known).
	RankUnproven = 1
	// RankTOFU: its signature verifies under the first key its device
	// announced (trust on first use).
	RankTOFU = 2
	// RankVerified: its signature verifies under the hall's trusted key.
	RankVerified = 3
)

// Correction is the join state of a rating that took the place of a copy
// whose evaluation had left already (delivered, taken from the table, or
// out for delivery): it is held for the duty manager, who corrects the
// evaluation with the e-supervision system by hand. An evaluation that had
// not left yet is withdrawn instead, and the rating joins afresh.
const Correction = "correction"

// rank is r.Rank, or where the caller set none, what its trust state says.
func (r Rating) rank() int {
	if r.Rank > 0 {
		return r.Rank
	}
	return rankOf(r.trust(), r.TrustReason)
}

func rankOf(trust, reason string) int {
	switch trust {
	case TrustVerified:
		return RankVerified
	case TrustUnverified:
		if slices.Contains(strings.Split(reason, ","), "tofu") {
			return RankTOFU
		}
		return RankUnproven
	}
	return RankFlagged
}

// migrateRanks is migration 3: the rank of each stored record and of each
// conflicting copy, the copies' trust state, and each device's first
// announced key.
func migrateRanks(tx *sql.Tx, d dialect) error {
	return execAll(tx, d,
		`ALTER TABLE rating ADD COLUMN copy_rank INTEGER NOT NULL DEFAULT 0`,
		`UPDATE rating SET copy_rank = CASE WHEN trust = 'verified' THEN 3
			WHEN trust = 'unverified' AND trust_reason LIKE '%tofu%' THEN 2
			WHEN trust = 'unverified' THEN 1 ELSE 0 END`,
		`ALTER TABLE rating_conflict ADD COLUMN trust TEXT NOT NULL DEFAULT 'flagged'`,
		`ALTER TABLE rating_conflict ADD COLUMN trust_reason TEXT NOT NULL DEFAULT 'conflict'`,
		`ALTER TABLE rating_conflict ADD COLUMN copy_rank INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE rating_conflict ADD COLUMN displaced INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE rating_conflict ADD COLUMN prev_join TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE device ADD COLUMN first_key TEXT NOT NULL DEFAULT ''`,
		`UPDATE device SET first_key = pubkey`,
	)
}

// Excluded is the join state of a counted rating kept out of joins,
// scores and evaluations because of its trust state: it failed
// verification, or it is unverified where the hall counts only verified
// ratings.
const Excluded = "excluded"

// migrateTrust is migration 2: each record's verification state, reason,
// prev and chain hash; each device's announced and trusted keys and its
// assigned counter; the conflicting copies of records.
func migrateTrust(tx *sql.Tx, d dialect) error {
	return execAll(tx, d,
		`ALTER TABLE rating ADD COLUMN trust TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN trust_reason TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN prev TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN chain_hash TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE rating ADD COLUMN signed INTEGER NOT NULL DEFAULT 0`,
		// Records stored before verification existed were never checked.
		`UPDATE rating SET trust = 'unverified', trust_reason = 'stored_before_verification'`,
		`CREATE INDEX rating_trust ON rating (trust, hall, counter)`,
		`ALTER TABLE device ADD COLUMN pubkey TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE device ADD COLUMN trusted_key TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE device ADD COLUMN assigned_hall TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE device ADD COLUMN assigned_counter TEXT NOT NULL DEFAULT ''`,
		`CREATE TABLE rating_conflict (
			id `+d.serial+`,
			rating_id TEXT NOT NULL,
			raw TEXT NOT NULL,
			received_ms BIGINT NOT NULL
		)`,
		`CREATE INDEX rating_conflict_rating ON rating_conflict (rating_id)`,
	)
}

// TrustEvent is a finding of the store's own checks: a broken link of an
// epoch's chain, or a copy of a stored record with other content.
type TrustEvent struct {
	Kind          string // ReasonChainBreak or ReasonConflict
	ID            string // the record flagged
	Device, Epoch string
	Seq           uint64
	// JoinState is the flagged record's join state before: "joined" means
	// its evaluation was made already.
	JoinState string
}

type chainRow struct {
	id, prev, hash, joinState, trust, reason, disposition string
	signed                                                bool
	rank                                                  int
}

// checkChains checks the links of new records to their neighbours stored
// before or in this batch, in both directions, so records arriving out of
// order are checked once both ends are there. rs are the new records,
// sorted by device, epoch and seq.
func (s *DB) checkChains(ctx context.Context, tx *sql.Tx, rs []Rating, holdUnverified bool) ([]TrustEvent, error) {
	var events []TrustEvent
	isNew := make(map[string]bool, len(rs))
	for _, r := range rs {
		isNew[r.ID] = true
	}
	for i := 0; i < len(rs); {
		j := i
		for j < len(rs) && rs[j].Device == rs[i].Device && rs[j].Epoch == rs[i].Epoch {
			j++
		}
		group := rs[i:j]
		i = j
		near, err := s.neighbours(ctx, tx, group)
		if err != nil {
			return nil, err
		}
		for _, r := range group {
			linked := r.Sig != "" || r.Prev != ""
			if linked {
				broken := false
				if r.Seq == 1 {
					broken = r.Prev != ""
				} else if p, ok := near[r.Seq-1]; ok && p.hash != "" {
					broken = p.hash != r.Prev
				}
				if broken {
					ev, err := s.flag(ctx, tx, ReasonChainBreak, r.ID)
					if err != nil {
						return nil, err
					}
					events = append(events, TrustEvent{ReasonChainBreak, r.ID, r.Device, r.Epoch, r.Seq, ev})
				}
			}
			n, ok := near[r.Seq+1]
			if !ok || isNew[n.id] || !(n.signed || n.prev != "") {
				continue
			}
			if n.prev == r.ChainHash() {
				// A copy that broke the link was replaced: the link holds.
				if err := s.unflagChain(ctx, tx, n, holdUnverified); err != nil {
					return nil, err
				}
				continue
			}
			ev, err := s.flag(ctx, tx, ReasonChainBreak, n.id)
			if err != nil {
				return nil, err
			}
			events = append(events, TrustEvent{ReasonChainBreak, n.id, r.Device, r.Epoch, r.Seq + 1, ev})
		}
	}
	return events, nil
}

// neighbours returns the stored records of a group's epoch just before and
// after each of the group's seqs, by seq.
func (s *DB) neighbours(ctx context.Context, tx *sql.Tx, group []Rating) (map[uint64]chainRow, error) {
	var seqs []any
	for _, r := range group {
		if r.Seq > 1 {
			seqs = append(seqs, int64(r.Seq-1))
		}
		seqs = append(seqs, int64(r.Seq+1))
	}
	out := map[uint64]chainRow{}
	dev, epoch := group[0].Device, group[0].Epoch
	for chunk := range slices.Chunk(seqs, 400) {
		q := `SELECT id, seq, prev, chain_hash, signed, join_state, trust, trust_reason, disposition, copy_rank
			FROM rating WHERE device = ? AND epoch = ? AND seq IN (` +
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",") + `)`
		rows, err := tx.QueryContext(ctx, s.d.q(q), append([]any{dev, epoch}, chunk...)...)
		if err != nil {
			return nil, fmt.Errorf("chain of %s/%s: %w", dev, epoch, err)
		}
		for rows.Next() {
			var c chainRow
			var seq int64
			var signed int
			if err := rows.Scan(&c.id, &seq, &c.prev, &c.hash, &signed, &c.joinState, &c.trust, &c.reason, &c.disposition, &c.rank); err != nil {
				rows.Close()
				return nil, fmt.Errorf("chain of %s/%s: %w", dev, epoch, err)
			}
			c.signed = signed == 1
			out[uint64(seq)] = c
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("chain of %s/%s: %w", dev, epoch, err)
		}
	}
	return out, nil
}

// flag marks a stored record flagged for reason and keeps it out of joins
// if it still waits for one. It returns the record's join state before.
func (s *DB) flag(ctx context.Context, tx *sql.Tx, reason, id string) (string, error) {
	var join string
	if err := tx.QueryRowContext(ctx, s.d.q(`SELECT join_state FROM rating WHERE id = ?`), id).Scan(&join); err != nil {
		return "", fmt.Errorf("flag %s: %w", id, err)
	}
	_, err := tx.ExecContext(ctx, s.d.q(`UPDATE rating SET trust = 'flagged', verified = 0,
			trust_reason = CASE WHEN trust_reason = '' THEN ?
				WHEN ',' || trust_reason || ',' LIKE ? THEN trust_reason
				ELSE trust_reason || ',' || ? END,
			join_state = CASE WHEN join_state = 'waiting' THEN 'excluded' ELSE join_state END
		WHERE id = ?`), reason, "%,"+reason+",%", reason, id)
	if err != nil {
		return "", fmt.Errorf("flag %s: %w", id, err)
	}
	return join, nil
}

// unflagChain lifts the chain break of a stored record whose link to its
// predecessor holds again. It stays flagged for any other reason.
func (s *DB) unflagChain(ctx context.Context, tx *sql.Tx, n chainRow, holdUnverified bool) error {
	reasons := strings.Split(n.reason, ",")
	if !slices.Contains(reasons, ReasonChainBreak) {
		return nil
	}
	reasons = slices.DeleteFunc(reasons, func(r string) bool { return r == ReasonChainBreak || r == "" })
	trust := TrustFlagged
	switch {
	case slices.ContainsFunc(reasons, func(r string) bool {
		return r == ReasonConflict || r == "bad_signature" || r == "unsigned" || r == "wrong_counter"
	}):
	case n.rank == RankVerified && len(reasons) == 0:
		trust = TrustVerified
	default:
		trust = TrustUnverified
	}
	join := n.joinState
	if join == Excluded && (trust == TrustVerified || trust == TrustUnverified && !holdUnverified) {
		join = Waiting
	}
	_, err := tx.ExecContext(ctx, s.d.q(`UPDATE rating SET trust = ?, trust_reason = ?, verified = ?, join_state = ? WHERE id = ?`),
		trust, strings.Join(reasons, ","), boolInt(trust == TrustVerified), join, n.id)
	if err != nil {
		return fmt.Errorf("lift chain break of %s: %w", n.id, err)
	}
	return nil
}

// storedCopy is what the store holds of a record, to compare a copy with.
type storedCopy struct {
	hash, trust, reason, join, raw string
	rank                           int
	storedMS                       int64
}

// resolveCopies compares each copy of a stored id that arrived again with
// the stored copy. The same content is a duplicate. Other content is kept
// aside as evidence, flagged, unless it ranks higher than the stored copy:
// then it takes the stored copy's place (a verified record always wins)
// and the stored copy becomes the evidence. Copies of equal rank cannot be
// told apart: the stored one is flagged conflict too.
func (s *DB) resolveCopies(ctx context.Context, tx *sql.Tx, dups []Rating, nowMS int64) ([]TrustEvent, []Rating, error) {
	var events []TrustEvent
	var replaced []Rating
	for _, r := range dups {
		var c storedCopy
		err := tx.QueryRowContext(ctx, s.d.q(`SELECT chain_hash, trust, trust_reason, join_state, raw, copy_rank, stored_ms
			FROM rating WHERE id = ?`), r.ID).Scan(&c.hash, &c.trust, &c.reason, &c.join, &c.raw, &c.rank, &c.storedMS)
		if err != nil {
			return nil, nil, fmt.Errorf("compare copies of %s: %w", r.ID, err)
		}
		if c.hash == "" || c.hash == r.ChainHash() {
			continue
		}
		if r.rank() > c.rank {
			if err := s.replace(ctx, tx, r, c, nowMS); err != nil {
				return nil, nil, err
			}
			// Replaced within this batch: the new copy is what was stored.
			for i := range replaced {
				if replaced[i].ID == r.ID {
					replaced = slices.Delete(replaced, i, i+1)
					break
				}
			}
			replaced = append(replaced, r)
			events = append(events, TrustEvent{ReasonReplaced, r.ID, r.Device, r.Epoch, r.Seq, c.join})
			continue
		}
		reason := joinReasons(r.TrustReason, ReasonConflict)
		if err := s.keepCopy(ctx, tx, r.ID, string(r.Raw), nowMS, reason, r.rank(), false, ""); err != nil {
			return nil, nil, err
		}
		join := c.join
		if r.rank() == c.rank {
			if join, err = s.flag(ctx, tx, ReasonConflict, r.ID); err != nil {
				return nil, nil, err
			}
		}
		events = append(events, TrustEvent{ReasonConflict, r.ID, r.Device, r.Epoch, r.Seq, join})
	}
	return events, replaced, nil
}

func joinReasons(a, b string) string {
	if a == "" {
		return b
	}
	if slices.Contains(strings.Split(a, ","), b) {
		return a
	}
	return a + "," + b
}

// keepCopy keeps a copy of a record as evidence in rating_conflict.
func (s *DB) keepCopy(ctx context.Context, tx *sql.Tx, id, raw string, atMS int64, reason string, rank int, displaced bool, prevJoin string) error {
	_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO rating_conflict (rating_id, raw, received_ms, trust, trust_reason, copy_rank, displaced, prev_join)
		VALUES (?, ?, ?, 'flagged', ?, ?, ?, ?)`), id, raw, atMS, reason, rank, boolInt(displaced), prevJoin)
	if err != nil {
		return fmt.Errorf("keep conflicting copy of %s: %w", id, err)
	}
	return nil
}

// replace puts r in the place of the stored copy c of its id. The
// evaluation made from c is withdrawn if it has not left yet, and r joins
// afresh; if it has left, r is held for the duty manager (Correction). A
// follow-up opened for c is reopened for r if r is a bad rating too,
// withdrawn if its alert was not sent, and else closed with a note.
func (s *DB) replace(ctx context.Context, tx *sql.Tx, r Rating, c storedCopy, nowMS int64) error {
	if err := s.keepCopy(ctx, tx, r.ID, c.raw, c.storedMS, joinReasons(c.reason, ReasonConflict), c.rank, true, c.join); err != nil {
		return err
	}
	join := r.joinState()
	if c.join == Joined {
		res, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM esup_evaluation WHERE rating_id = ? AND lease_until <= ?
			AND (state IN ('pending', 'held') OR (state = 'table' AND taken_at IS NULL))`), r.ID, nowMS)
		if err != nil {
			return fmt.Errorf("withdraw evaluation of %s: %w", r.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("withdraw evaluation of %s: %w", r.ID, err)
		} else if n == 0 {
			join = Correction
		}
	}
	cols := strings.Split(ratingCols, ",")
	var set strings.Builder
	for i, col := range cols {
		if i == 0 {
			continue // id
		}
		if i > 1 {
			set.WriteString(", ")
		}
		set.WriteString(strings.TrimSpace(col) + " = ?")
	}
	args := r.columns()[1:]
	for i, col := range cols {
		if strings.TrimSpace(col) == "join_state" {
			args[i-1] = join
		}
	}
	_, err := tx.ExecContext(ctx, s.d.q(`UPDATE rating SET `+set.String()+`, case_no = '', join_mark = 0 WHERE id = ?`),
		append(args, r.ID)...)
	if err != nil {
		return fmt.Errorf("replace %s: %w", r.ID, err)
	}
	if f := r.Followup; f != nil {
		_, err = tx.ExecContext(ctx, s.d.q(`INSERT INTO followup (rating_id, hall, counter, ticket, project_no, staff,
				satisfaction, pressed_at, due, created_ms, alert, reason_due_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (rating_id) DO UPDATE SET hall = excluded.hall, counter = excluded.counter, ticket = excluded.ticket,
				project_no = excluded.project_no, staff = excluded.staff, satisfaction = excluded.satisfaction,
				pressed_at = excluded.pressed_at, due = excluded.due, alert = excluded.alert,
				closed_ms = NULL, note = '', alert_sent_ms = NULL, alert_lease_ms = 0, reason_due_ms = excluded.reason_due_ms`),
			r.ID, f.Hall, f.Counter, f.Ticket, f.ProjectNo, f.Staff, f.Satisfaction, f.PressedAt, f.Due, f.CreatedMS, string(f.Alert),
			f.ReasonDueMS)
		if err != nil {
			return fmt.Errorf("open follow-up of %s: %w", r.ID, err)
		}
		return nil
	}
	if _, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM followup WHERE rating_id = ? AND alert_sent_ms IS NULL AND closed_ms IS NULL`), r.ID); err != nil {
		return fmt.Errorf("withdraw follow-up of %s: %w", r.ID, err)
	}
	_, err = tx.ExecContext(ctx, s.d.q(`UPDATE followup SET closed_ms = ?, note = ? WHERE rating_id = ? AND closed_ms IS NULL`),
		nowMS, "closed: opened for a copy that failed verification; the verified record replaced it", r.ID)
	if err != nil {
		return fmt.Errorf("close follow-up of %s: %w", r.ID, err)
	}
	return nil
}

// DeviceKey is one device of the hall's inventory as the store keeps it.
type DeviceKey struct {
	Device, Hall, Counter string
	// Key is the trusted public key, base64; "" when there is none yet.
	Key string
}

// SaveInventory records the trusted keys and assigned counters of the
// inventory; devices it no longer lists lose theirs.
func (s *DB) SaveInventory(ctx context.Context, devs []DeviceKey) error {
	return s.inTx(ctx, "save inventory", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE device SET trusted_key = '', assigned_hall = '', assigned_counter = ''`); err != nil {
			return err
		}
		for _, d := range devs {
			_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO device (device, hall, counter, trusted_key, assigned_hall, assigned_counter)
				VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (device) DO UPDATE SET trusted_key = excluded.trusted_key,
					assigned_hall = excluded.assigned_hall, assigned_counter = excluded.assigned_counter`),
				d.Device, d.Hall, d.Counter, d.Key, d.Hall, d.Counter)
			if err != nil {
				return fmt.Errorf("device %s: %w", d.Device, err)
			}
		}
		return nil
	})
}

// CounterTrust counts a counter's records by trust state, for the audit
// panel's "records failed verification" warning.
type CounterTrust struct {
	Hall       string `json:"hall"`
	Counter    string `json:"counter"`
	Verified   int64  `json:"verified"`
	Unverified int64  `json:"unverified"`
	// TOFU of the unverified verify only under a key their device
	// announced itself.
	TOFU    int64 `json:"tofu"`
	Flagged int64 `json:"flagged"`
	// LastFlaggedMS is when the newest flagged record was stored.
	LastFlaggedMS int64 `json:"last_flagged_ms,omitempty"`
}

// TrustByCounter counts every counter's records by trust state.
func (s *DB) TrustByCounter(ctx context.Context) ([]CounterTrust, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT hall, counter,
			SUM(CASE WHEN trust = 'verified' THEN 1 ELSE 0 END),
			SUM(CASE WHEN trust = 'unverified' THEN 1 ELSE 0 END),
			SUM(CASE WHEN trust = 'unverified' AND trust_reason LIKE '%tofu%' THEN 1 ELSE 0 END),
			SUM(CASE WHEN trust = 'flagged' THEN 1 ELSE 0 END),
			COALESCE(MAX(CASE WHEN trust = 'flagged' THEN stored_ms END), 0)
		FROM rating GROUP BY hall, counter ORDER BY hall, counter`)
	if err != nil {
		return nil, fmt.Errorf("store: trust by counter: %w", err)
	}
	defer rows.Close()
	var out []CounterTrust
	for rows.Next() {
		var c CounterTrust
		if err := rows.Scan(&c.Hall, &c.Counter, &c.Verified, &c.Unverified, &c.TOFU, &c.Flagged, &c.LastFlaggedMS); err != nil {
			return nil, fmt.Errorf("store: trust by counter: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: trust by counter: %w", err)
	}
	return out, nil
}

// StoredRecord is a stored record as received (Raw) next to the columns
// scores and evaluations are computed from, so that an audit can tell
// whether those were changed in the database.
type StoredRecord struct {
	Raw                                           []byte
	Hall, Counter, Disposition, Ticket, PressedAt string
	Staff, Item, ProjectNo                        string
	Seq                                           int64
	Satisfaction                                  int
}

// EachRecord calls fn with every stored record, ordered by device, epoch
// and seq, for re-verification; it stops at fn's first error.
func (s *DB) EachRecord(ctx context.Context, fn func(StoredRecord) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT raw, hall, counter, disposition, ticket, pressed_at, staff, item, project_no,
		seq, satisfaction FROM rating ORDER BY device, epoch, seq`)
	if err != nil {
		return fmt.Errorf("store: read records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r StoredRecord
		if err := rows.Scan(&r.Raw, &r.Hall, &r.Counter, &r.Disposition, &r.Ticket, &r.PressedAt, &r.Staff, &r.Item,
			&r.ProjectNo, &r.Seq, &r.Satisfaction); err != nil {
			return fmt.Errorf("store: read records: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: read records: %w", err)
	}
	return nil
}

// Conflict is a copy of a stored record that arrived with other content.
type Conflict struct {
	RatingID   string `json:"ratingId"`
	Raw        string `json:"raw"`
	ReceivedMS int64  `json:"received_ms"`
	// Trust is always flagged; TrustReason says why (its own checks'
	// reasons and conflict).
	Trust       string `json:"trust"`
	TrustReason string `json:"trust_reason"`
	// Displaced: it was the stored rating until a higher ranked copy
	// arrived; PrevJoin is the join state it had then ("joined": its
	// evaluation was made).
	Displaced bool   `json:"displaced"`
	PrevJoin  string `json:"prev_join,omitempty"`
}

// Conflicts lists the conflicting copies, newest first.
func (s *DB) Conflicts(ctx context.Context, n int) ([]Conflict, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT rating_id, raw, received_ms, trust, trust_reason, displaced, prev_join
		FROM rating_conflict ORDER BY id DESC LIMIT ?`), limit(n))
	if err != nil {
		return nil, fmt.Errorf("store: conflicts: %w", err)
	}
	defer rows.Close()
	var out []Conflict
	for rows.Next() {
		var c Conflict
		var displaced int
		if err := rows.Scan(&c.RatingID, &c.Raw, &c.ReceivedMS, &c.Trust, &c.TrustReason, &displaced, &c.PrevJoin); err != nil {
			return nil, fmt.Errorf("store: conflicts: %w", err)
		}
		c.Displaced = displaced == 1
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: conflicts: %w", err)
	}
	return out, nil
}

// checkTrust runs the checks that need other records, on a batch just
// inserted: rs are the batch's best copies (sorted, one per id), extra the
// other copies of the same ids, news those that were new. It first settles
// which copy of each id is stored, then checks the chains of the records
// new or replaced, and updates the state of the new records it flags.
func (s *DB) checkTrust(ctx context.Context, tx *sql.Tx, b Batch, rs, extra, news []Rating, isNew map[string]bool) ([]TrustEvent, []Rating, error) {
	var dups []Rating
	for _, r := range rs {
		if !isNew[r.ID] {
			dups = append(dups, r)
		}
	}
	dups = append(dups, extra...)
	var events []TrustEvent
	var replaced []Rating
	if len(dups) > 0 {
		nowMS := dups[0].StoredMS
		if len(news) > 0 {
			nowMS = news[0].StoredMS
		}
		var err error
		if events, replaced, err = s.resolveCopies(ctx, tx, dups, nowMS); err != nil {
			return nil, nil, err
		}
	}
	changed := append(slices.Clone(news), replaced...)
	slices.SortFunc(changed, func(x, y Rating) int {
		return cmp.Or(cmp.Compare(x.Device, y.Device), cmp.Compare(x.Epoch, y.Epoch), cmp.Compare(x.Seq, y.Seq))
	})
	chain, err := s.checkChains(ctx, tx, changed, b.HoldUnverified)
	if err != nil {
		return nil, nil, err
	}
	events = append(events, chain...)
	for _, e := range chain {
		for _, list := range [][]Rating{news, replaced} {
			for i := range list {
				if list[i].ID != e.ID {
					continue
				}
				r := &list[i]
				// A flagged rating opens no follow-up.
				r.Trust, r.Verified, r.Hold, r.Followup = TrustFlagged, false, true, nil
				r.TrustReason = joinReasons(r.TrustReason, e.Kind)
			}
		}
	}
	return events, replaced, nil
}
