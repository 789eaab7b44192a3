package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// StreamAudit is what was received of one device's epoch.
type StreamAudit struct {
	Device   string `json:"device"`
	Epoch    string `json:"epoch"`
	Received uint64 `json:"received"`
	MaxSeq   uint64 `json:"max_seq"`
	// Gaps are the seqs below MaxSeq not received.
	Gaps Ranges `json:"gaps"`
}

// DeviceAudit is a device's last status compared with what was received.
type DeviceAudit struct {
	Device     string `json:"device"`
	Hall       string `json:"hall"`
	Counter    string `json:"counter"`
	Online     bool   `json:"online"`
	Version    string `json:"version,omitempty"`
	OutboxFull bool   `json:"outbox_full"`
	StatusAt   string `json:"status_at,omitempty"`
	// Audited is false while no status carried epoch and last_seq.
	Audited bool   `json:"audited"`
	Epoch   string `json:"epoch,omitempty"`
	LastSeq uint64 `json:"last_seq"`
	Pending uint64 `json:"pending"`
	// Missing are the seqs the device reports delivered to the broker (up
	// to last_seq - pending) that were not received.
	Missing Ranges `json:"missing"`
	// PubKey is the key the device announced in its status; TrustedKey the
	// key of the hall's keys file, and Assigned its counter there ("" when
	// the file does not list the device). KeyMismatch: both are known and
	// differ.
	PubKey      string `json:"pubkey,omitempty"`
	TrustedKey  string `json:"trusted_key,omitempty"`
	Assigned    string `json:"assigned,omitempty"`
	KeyMismatch bool   `json:"key_mismatch"`
}

// Audit is the state of the loss audit.
type Audit struct {
	Stored  int64         `json:"stored"`
	Streams []StreamAudit `json:"streams"`
	Devices []DeviceAudit `json:"devices"`
	// Trust counts each counter's records by verification state.
	Trust []CounterTrust `json:"trust"`
	// Parked are the newest parked messages (at most AuditParked), newest
	// first; ParkedTotal how many are kept.
	Parked      []Parked `json:"parked"`
	ParkedTotal int64    `json:"parked_total"`
	// Conflicts are the newest copies kept as evidence: copies of a stored
	// id with other content that lost to it, or that it replaced.
	Conflicts []Conflict `json:"conflicts"`
}

// AuditParked bounds the parked messages the audit lists.
const AuditParked = 50

// Audit computes the loss audit from the stored records and the devices'
// last statuses.
func (s *DB) Audit(ctx context.Context) (Audit, error) {
	var a Audit
	rows, err := s.db.QueryContext(ctx, `SELECT device, epoch, received, max_seq FROM device_epoch ORDER BY device, epoch`)
	if err != nil {
		return a, fmt.Errorf("store: audit: %w", err)
	}
	for rows.Next() {
		var st StreamAudit
		var rec, top int64
		if err := rows.Scan(&st.Device, &st.Epoch, &rec, &top); err != nil {
			rows.Close()
			return a, fmt.Errorf("store: audit: %w", err)
		}
		st.Received, st.MaxSeq = uint64(rec), uint64(top)
		a.Stored += rec
		a.Streams = append(a.Streams, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return a, fmt.Errorf("store: audit: %w", err)
	}
	byKey := map[[2]string]*StreamAudit{}
	for i := range a.Streams {
		st := &a.Streams[i]
		byKey[[2]string{st.Device, st.Epoch}] = st
		if st.Received < st.MaxSeq {
			if st.Gaps, err = s.gaps(ctx, st.Device, st.Epoch); err != nil {
				return a, err
			}
		}
	}
	rows, err = s.db.QueryContext(ctx, `SELECT device, hall, counter, online, version, outbox_full, status_at, epoch,
		last_seq, pending, pubkey, trusted_key, assigned_hall, assigned_counter FROM device ORDER BY device`)
	if err != nil {
		return a, fmt.Errorf("store: audit devices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d DeviceAudit
		var online, full int
		var lastSeq, pending sql.NullInt64
		var ahall, acounter string
		if err := rows.Scan(&d.Device, &d.Hall, &d.Counter, &online, &d.Version, &full, &d.StatusAt, &d.Epoch,
			&lastSeq, &pending, &d.PubKey, &d.TrustedKey, &ahall, &acounter); err != nil {
			return a, fmt.Errorf("store: audit devices: %w", err)
		}
		if ahall != "" {
			d.Assigned = ahall + "/" + acounter
		}
		d.KeyMismatch = d.PubKey != "" && d.TrustedKey != "" && d.PubKey != d.TrustedKey
		d.Online, d.OutboxFull = online == 1, full == 1
		if d.Epoch != "" && lastSeq.Valid {
			d.Audited, d.LastSeq = true, uint64(lastSeq.Int64)
			if pending.Int64 > 0 {
				d.Pending = min(uint64(pending.Int64), d.LastSeq)
			}
			delivered := d.LastSeq - d.Pending
			st := byKey[[2]string{d.Device, d.Epoch}]
			if st == nil {
				st = &StreamAudit{}
			}
			d.Missing = st.Gaps.upTo(delivered)
			if delivered > st.MaxSeq {
				d.Missing = append(d.Missing, Range{st.MaxSeq + 1, delivered})
			}
		}
		a.Devices = append(a.Devices, d)
	}
	if err := rows.Err(); err != nil {
		return a, fmt.Errorf("store: audit devices: %w", err)
	}
	if a.Trust, err = s.TrustByCounter(ctx); err != nil {
		return a, err
	}
	if a.Parked, a.ParkedTotal, err = s.ParkedMessages(ctx, AuditParked); err != nil {
		return a, err
	}
	if a.Conflicts, err = s.Conflicts(ctx, 100); err != nil {
		return a, err
	}
	if a.Conflicts == nil {
		a.Conflicts = []Conflict{}
	}
	return a, nil
}

// gaps returns the seqs of an epoch below its highest that were not
// received.
func (s *DB) gaps(ctx context.Context, device, epoch string) (Ranges, error) {
	rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT seq FROM rating WHERE device = ? AND epoch = ? ORDER BY seq`), device, epoch)
	if err != nil {
		return nil, fmt.Errorf("store: gaps of %s/%s: %w", device, epoch, err)
	}
	defer rows.Close()
	var gaps Ranges
	var prev uint64
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return nil, fmt.Errorf("store: gaps of %s/%s: %w", device, epoch, err)
		}
		if uint64(seq) > prev+1 {
			gaps = append(gaps, Range{prev + 1, uint64(seq) - 1})
		}
		prev = uint64(seq)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: gaps of %s/%s: %w", device, epoch, err)
	}
	return gaps, nil
}

// TakeEvaluations marks table rows taken, as the e-supervision side does
// with UPDATE esup_evaluation SET taken_at = ... It is for tests and tools.
func (s *DB) TakeEvaluations(ctx context.Context, takenAt string) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.d.q(`UPDATE esup_evaluation SET taken_at = ? WHERE state = 'table' AND taken_at IS NULL`), takenAt)
	if err != nil {
		return 0, fmt.Errorf("store: take evaluations: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: take evaluations: %w", err)
	}
	return n, nil
}

// MaxMissing bounds the missing seqs a [StoredAck] lists.
const MaxMissing = 1000

// StoredAck says which records of a device's epoch are stored: every seq
// up to Through, and above it all but Missing (at most [MaxMissing] of
// them, lowest first) up to the highest seq received.
type StoredAck struct {
	Through uint64
	// Highest is the highest seq the acknowledgement speaks for: the
	// highest received, or the last missing seq listed when the list was
	// cut at MaxMissing.
	Highest uint64
	Missing []uint64
}

// Stored returns what is stored of device's epoch.
func (s *DB) Stored(ctx context.Context, device, epoch string) (StoredAck, error) {
	var maxSeq int64
	err := s.db.QueryRowContext(ctx, s.d.q(`SELECT max_seq FROM device_epoch WHERE device = ? AND epoch = ?`), device, epoch).Scan(&maxSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return StoredAck{Missing: []uint64{}}, nil
	}
	if err != nil {
		return StoredAck{}, fmt.Errorf("store: stored of %s/%s: %w", device, epoch, err)
	}
	gaps, err := s.gaps(ctx, device, epoch)
	if err != nil {
		return StoredAck{}, err
	}
	a := StoredAck{Through: uint64(maxSeq), Highest: uint64(maxSeq), Missing: []uint64{}}
	if len(gaps) > 0 {
		a.Through = gaps[0].From - 1
	}
	for _, g := range gaps {
		for seq := g.From; seq <= g.To; seq++ {
			if len(a.Missing) == MaxMissing {
				a.Highest = a.Missing[MaxMissing-1]
				return a, nil
			}
			a.Missing = append(a.Missing, seq)
		}
	}
	return a, nil
}
