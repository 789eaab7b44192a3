package ingest

import (
	"cmp"
	"slices"
	"time"

	"github.com/hallrate/hallrate/record"
)

// EventKind says what an [Event] reports.
type EventKind int

// The events of the seq audit.
const (
	// GapOpened: a record arrived with seqs before it not yet received.
	GapOpened EventKind = iota + 1
	// GapFilled: a record arrived late, inside a gap reported before.
	GapFilled
)

func (k EventKind) String() string {
	switch k {
	case GapOpened:
		return "gap"
	case GapFilled:
		return "gap filled"
	}
	return "unknown"
}

// Event is a finding of the seq audit.
type Event struct {
	Kind   EventKind
	Device string
	Epoch  string
	Seqs   Range
}

// stream is what was received of one device's epoch.
type stream struct {
	received uint64
	max      uint64
	missing  Ranges
}

type streamKey struct{ device, epoch string }

// DeviceStatus is the last status a device published, with where it was
// published.
type DeviceStatus struct {
	Hall, Counter string
	record.Status
	// Audited is the last status that carried an epoch and last_seq: an
	// offline status (the Last Will) carries neither.
	Audited  *record.Status
	Received time.Time
}

// Ledger knows which records are stored and audits each device's seqs for
// loss. It is not safe for concurrent use.
type Ledger struct {
	seen     map[string]struct{}
	streams  map[streamKey]*stream
	statuses map[string]*DeviceStatus
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{
		seen:     map[string]struct{}{},
		streams:  map[streamKey]*stream{},
		statuses: map[string]*DeviceStatus{},
	}
}

// Seen reports whether the record with this id is stored.
func (l *Ledger) Seen(id string) bool {
	_, ok := l.seen[id]
	return ok
}

// Len returns the number of stored records.
func (l *Ledger) Len() int { return len(l.seen) }

// Add notes a stored record and returns what the seq audit found: a gap
// before it, or a gap it fills. Adding a record already seen does nothing.
func (l *Ledger) Add(p record.Press) []Event {
	if l.Seen(p.ID) {
		return nil
	}
	l.seen[p.ID] = struct{}{}
	key := streamKey{p.Device, p.Epoch}
	s := l.streams[key]
	if s == nil {
		s = &stream{}
		l.streams[key] = s
	}
	s.received++
	switch {
	case p.Seq > s.max+1:
		gap := Range{s.max + 1, p.Seq - 1}
		s.missing = append(s.missing, gap)
		s.max = p.Seq
		return []Event{{GapOpened, p.Device, p.Epoch, gap}}
	case p.Seq == s.max+1:
		s.max = p.Seq
	case s.missing.contains(p.Seq):
		s.missing = s.missing.remove(p.Seq)
		return []Event{{GapFilled, p.Device, p.Epoch, Range{p.Seq, p.Seq}}}
	}
	return nil
}

// SetStatus keeps s as the device's last status.
func (l *Ledger) SetStatus(hall, counter string, s record.Status, now time.Time) {
	ds := l.statuses[s.Device]
	if ds == nil {
		ds = &DeviceStatus{}
		l.statuses[s.Device] = ds
	}
	ds.Hall, ds.Counter, ds.Status, ds.Received = hall, counter, s, now
	if s.Epoch != "" && s.LastSeq != nil {
		a := s
		ds.Audited = &a
	}
}

// Status returns the last status of device.
func (l *Ledger) Status(device string) (DeviceStatus, bool) {
	ds, ok := l.statuses[device]
	if !ok {
		return DeviceStatus{}, false
	}
	return *ds, true
}

// StreamAudit is what was received of one device's epoch.
type StreamAudit struct {
	Device, Epoch string
	Received      uint64
	MaxSeq        uint64
	// Gaps are the seqs below MaxSeq not received.
	Gaps Ranges
}

// DeviceAudit compares a device's status with what was received.
type DeviceAudit struct {
	Device, Hall, Counter string
	Online                bool
	Epoch                 string
	LastSeq               uint64
	Pending               uint64
	// Missing are the seqs the device reports delivered to the broker
	// (up to last_seq - pending) that were not received.
	Missing Ranges
	// Audited is false when no status carried last_seq yet.
	Audited bool
}

// Audit is the state of the loss audit.
type Audit struct {
	Stored  int
	Streams []StreamAudit
	Devices []DeviceAudit
}

// Audit returns the state of the loss audit, sorted by device and epoch.
func (l *Ledger) Audit() Audit {
	a := Audit{Stored: len(l.seen)}
	for k, s := range l.streams {
		a.Streams = append(a.Streams, StreamAudit{
			Device: k.device, Epoch: k.epoch, Received: s.received, MaxSeq: s.max,
			Gaps: slices.Clone(s.missing),
		})
	}
	slices.SortFunc(a.Streams, func(x, y StreamAudit) int {
		return cmp.Or(cmp.Compare(x.Device, y.Device), cmp.Compare(x.Epoch, y.Epoch))
	})
	for dev, ds := range l.statuses {
		a.Devices = append(a.Devices, l.deviceAudit(dev, ds))
	}
	slices.SortFunc(a.Devices, func(x, y DeviceAudit) int { return cmp.Compare(x.Device, y.Device) })
	return a
}

func (l *Ledger) deviceAudit(dev string, ds *DeviceStatus) DeviceAudit {
	d := DeviceAudit{Device: dev, Hall: ds.Hall, Counter: ds.Counter, Online: ds.Online}
	st := ds.Audited
	if st == nil {
		return d
	}
	d.Audited, d.Epoch, d.LastSeq = true, st.Epoch, *st.LastSeq
	if st.Pending != nil && *st.Pending > 0 {
		d.Pending = min(uint64(*st.Pending), d.LastSeq)
	}
	delivered := d.LastSeq - d.Pending
	s := l.streams[streamKey{dev, st.Epoch}]
	if s == nil {
		s = &stream{}
	}
	d.Missing = s.missing.upTo(delivered)
	if delivered > s.max {
		d.Missing = append(d.Missing, Range{s.max + 1, delivered})
	}
	return d
}
