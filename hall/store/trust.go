package store

import (
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
)

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
	id, prev, hash, joinState string
	signed                    bool
}

// checkChains checks the links of new records to their neighbours stored
// before or in this batch, in both directions, so records arriving out of
// order are checked once both ends are there. rs are the new records,
// sorted by device, epoch and seq.
func (s *DB) checkChains(ctx context.Context, tx *sql.Tx, rs []Rating) ([]TrustEvent, error) {
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
			if !ok || isNew[n.id] || !(n.signed || n.prev != "") || n.prev == r.ChainHash() {
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
		q := `SELECT id, seq, prev, chain_hash, signed, join_state FROM rating WHERE device = ? AND epoch = ? AND seq IN (` +
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",") + `)`
		rows, err := tx.QueryContext(ctx, s.d.q(q), append([]any{dev, epoch}, chunk...)...)
		if err != nil {
			return nil, fmt.Errorf("chain of %s/%s: %w", dev, epoch, err)
		}
		for rows.Next() {
			var c chainRow
			var seq int64
			var signed int
			if err := rows.Scan(&c.id, &seq, &c.prev, &c.hash, &signed, &c.joinState); err != nil {
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

// checkConflicts compares records delivered again with the stored copy
// of the same id: a copy with other content is kept aside and the stored
// record flagged. dups are the batch's records that were not new.
func (s *DB) checkConflicts(ctx context.Context, tx *sql.Tx, dups []Rating, nowMS int64) ([]TrustEvent, error) {
	var events []TrustEvent
	for chunk := range slices.Chunk(dups, 400) {
		args := make([]any, len(chunk))
		for i, r := range chunk {
			args[i] = r.ID
		}
		rows, err := tx.QueryContext(ctx, s.d.q(`SELECT id, chain_hash FROM rating WHERE id IN (`+
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("compare copies: %w", err)
		}
		stored := map[string]string{}
		for rows.Next() {
			var id, hash string
			if err := rows.Scan(&id, &hash); err != nil {
				rows.Close()
				return nil, fmt.Errorf("compare copies: %w", err)
			}
			stored[id] = hash
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("compare copies: %w", err)
		}
		for _, r := range chunk {
			h, ok := stored[r.ID]
			if !ok || h == "" || h == r.ChainHash() {
				continue
			}
			if _, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO rating_conflict (rating_id, raw, received_ms) VALUES (?, ?, ?)`),
				r.ID, string(r.Raw), nowMS); err != nil {
				return nil, fmt.Errorf("keep conflicting copy of %s: %w", r.ID, err)
			}
			join, err := s.flag(ctx, tx, ReasonConflict, r.ID)
			if err != nil {
				return nil, err
			}
			events = append(events, TrustEvent{ReasonConflict, r.ID, r.Device, r.Epoch, r.Seq, join})
		}
	}
	return events, nil
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
}

// Conflicts lists the conflicting copies, newest first.
func (s *DB) Conflicts(ctx context.Context, n int) ([]Conflict, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT rating_id, raw, received_ms FROM rating_conflict ORDER BY id DESC LIMIT ?`), limit(n))
	if err != nil {
		return nil, fmt.Errorf("store: conflicts: %w", err)
	}
	defer rows.Close()
	var out []Conflict
	for rows.Next() {
		var c Conflict
		if err := rows.Scan(&c.RatingID, &c.Raw, &c.ReceivedMS); err != nil {
			return nil, fmt.Errorf("store: conflicts: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: conflicts: %w", err)
	}
	return out, nil
}

// checkTrust runs the checks that need other records, on a batch just
// inserted: rs is the whole batch (sorted, one per id), news those that
// were new. It updates the verification state of the new records it flags.
func (s *DB) checkTrust(ctx context.Context, tx *sql.Tx, rs, news []Rating, isNew map[string]bool) ([]TrustEvent, error) {
	events, err := s.checkChains(ctx, tx, news)
	if err != nil {
		return nil, err
	}
	var dups []Rating
	for _, r := range rs {
		if !isNew[r.ID] {
			dups = append(dups, r)
		}
	}
	if len(dups) > 0 {
		var nowMS int64
		if len(news) > 0 {
			nowMS = news[0].StoredMS
		} else {
			nowMS = dups[0].StoredMS
		}
		ev, err := s.checkConflicts(ctx, tx, dups, nowMS)
		if err != nil {
			return nil, err
		}
		events = append(events, ev...)
	}
	for _, e := range events {
		for i := range news {
			if news[i].ID != e.ID {
				continue
			}
			r := &news[i]
			r.Trust, r.Verified, r.Hold = TrustFlagged, false, true
			if !slices.Contains(strings.Split(r.TrustReason, ","), e.Kind) {
				r.TrustReason = strings.TrimPrefix(r.TrustReason+","+e.Kind, ",")
			}
		}
	}
	return events, nil
}
