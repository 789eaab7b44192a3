package trust

import (
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/hallrate/hallrate/record"
)

// Range is an inclusive range of seqs.
type Range struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// Seqs is an ascending list of disjoint ranges of seqs.
type Seqs []Range

// add appends seq, which must not be below the last one added.
func (s *Seqs) add(seq uint64) { s.addRange(seq, seq) }

func (s *Seqs) addRange(from, to uint64) {
	if n := len(*s); n > 0 && (*s)[n-1].To+1 >= from {
		(*s)[n-1].To = max((*s)[n-1].To, to)
		return
	}
	*s = append(*s, Range{from, to})
}

// Count returns how many seqs s holds.
func (s Seqs) Count() uint64 {
	var n uint64
	for _, r := range s {
		n += r.To - r.From + 1
	}
	return n
}

func (s Seqs) String() string {
	parts := make([]string, len(s))
	for i, r := range s {
		parts[i] = strconv.FormatUint(r.From, 10)
		if r.To != r.From {
			parts[i] += "-" + strconv.FormatUint(r.To, 10)
		}
	}
	return strings.Join(parts, ",")
}

// The outcome of the checks of one record, kept small: an auditor holds
// one entry per record of a month.
const (
	fVerified uint8 = 1 << iota
	fNoKey
	fTOFU
	fBadSig
	fUnsigned
	fWrongCounter
	fAltered
)

type entry struct {
	seq        uint64
	hash, prev [32]byte
	// prevSet: prev is a hash; prevBad: prev is neither empty nor a hash.
	prevSet, prevBad bool
	// linked: the record takes part in the chain (it is signed or carries
	// a prev); records of agents from before signing do not.
	linked bool
	flags  uint8
}

type stream struct {
	device, epoch, hall, counter string
	entries                      []entry
}

// Auditor re-verifies a set of records offline, such as a month's export:
// every signature, every device's counter, every link of every epoch's
// chain whose two ends are present, and the seqs that are missing.
type Auditor struct {
	inv       *Inventory
	announced map[string]ed25519.PublicKey
	streams   map[[2]string]*stream
	// Complete says the records are an epoch's whole history, so seqs
	// missing before the first one present are gaps (the store); a file
	// may start in the middle of an epoch.
	Complete       bool
	malformed      int
	malformedLines []string
}

// NewAuditor returns an auditor checking against inv (nil: no keys file).
func NewAuditor(inv *Inventory) *Auditor {
	return &Auditor{inv: inv, announced: map[string]ed25519.PublicKey{}, streams: map[[2]string]*stream{}}
}

// Announce notes the key a device announced in its status, for trust on
// first use.
func (a *Auditor) Announce(device string, key ed25519.PublicKey) { a.announced[device] = key }

// AddLine decodes one line of a JSON-lines file and adds its record; where
// names the line in the report of a line that is not a record.
func (a *Auditor) AddLine(line []byte, where string) {
	p, err := record.DecodePress(line)
	if err != nil {
		a.malformed++
		if len(a.malformedLines) < 10 {
			a.malformedLines = append(a.malformedLines, where+": "+err.Error())
		}
		return
	}
	a.Add(&p)
}

// Add checks one decoded record and keeps what the chain and the seq audit
// need of it.
func (a *Auditor) Add(p *record.Press) {
	key := [2]string{p.Device, p.Epoch}
	st := a.streams[key]
	if st == nil {
		st = &stream{device: p.Device, epoch: p.Epoch, hall: p.Hall, counter: p.Counter}
		a.streams[key] = st
	}
	e := entry{seq: p.Seq, linked: p.Sig != "" || p.Prev != ""}
	if m, err := p.SignedMessage(); err == nil {
		e.hash = sha256.Sum256(m)
	}
	if p.Prev != "" {
		b, err := hex.DecodeString(p.Prev)
		if err == nil && len(b) == len(e.prev) {
			copy(e.prev[:], b)
			e.prevSet = true
		} else {
			e.prevBad = true
		}
	}
	v := Check(a.inv, p, a.announced[p.Device])
	if v.State == Verified {
		e.flags |= fVerified
	}
	for _, r := range v.Reasons {
		switch r {
		case NoTrustedKey:
			e.flags |= fNoKey
		case TOFU:
			e.flags |= fTOFU
		case BadSignature:
			e.flags |= fBadSig
		case Unsigned:
			e.flags |= fUnsigned
		case WrongCounter:
			e.flags |= fWrongCounter
		}
	}
	st.entries = append(st.entries, e)
}

// MarkAltered notes that the last record added was stored with columns
// that differ from the record as received.
func (a *Auditor) MarkAltered(p *record.Press) {
	st := a.streams[[2]string{p.Device, p.Epoch}]
	if st == nil || len(st.entries) == 0 {
		return
	}
	st.entries[len(st.entries)-1].flags |= fAltered
}

// End is what a device's last status says of its current epoch: the seqs
// up to Delivered (last_seq - pending) were acknowledged by the broker.
type End struct {
	Epoch     string
	Delivered uint64
}

// StreamReport is what an audit found in one device's epoch.
type StreamReport struct {
	Device     string `json:"device"`
	Epoch      string `json:"epoch"`
	Hall       string `json:"hall"`
	Counter    string `json:"counter"`
	Records    int    `json:"records"`
	Duplicates int    `json:"duplicates"`
	FirstSeq   uint64 `json:"first_seq"`
	LastSeq    uint64 `json:"last_seq"`
	Verified   int    `json:"verified"`
	// Unverified have no trusted key; TOFU of them verify under the key
	// the device announced.
	Unverified   int  `json:"unverified"`
	TOFU         int  `json:"tofu"`
	BadSignature Seqs `json:"bad_signature"`
	Unsigned     Seqs `json:"unsigned"`
	WrongCounter Seqs `json:"wrong_counter"`
	// ChainBreaks are the seqs whose link to the previous record fails.
	ChainBreaks Seqs `json:"chain_breaks"`
	// Conflicts are seqs received twice with different content.
	Conflicts Seqs `json:"conflicts"`
	// Altered are seqs whose stored columns (what scores are computed
	// from) differ from the record as received.
	Altered Seqs `json:"altered,omitempty"`
	// Gaps are the seqs missing between the first and the last present
	// (from 1 when the audit is complete); Missing those the device's
	// status says were delivered after the last present.
	Gaps    Seqs `json:"gaps"`
	Missing Seqs `json:"missing"`
}

// Flagged reports whether anything in s failed.
func (s StreamReport) Flagged() bool {
	return len(s.BadSignature)+len(s.Unsigned)+len(s.WrongCounter)+len(s.ChainBreaks)+len(s.Conflicts)+len(s.Gaps)+
		len(s.Missing)+len(s.Altered) > 0
}

// Report is the outcome of an audit.
type Report struct {
	Streams        []StreamReport `json:"streams"`
	Malformed      int            `json:"malformed"`
	MalformedLines []string       `json:"malformed_lines,omitempty"`
}

// Flagged reports whether anything failed: a check, a gap, a missing
// record or a line that is not a record.
func (r Report) Flagged() bool {
	if r.Malformed > 0 {
		return true
	}
	for _, s := range r.Streams {
		if s.Flagged() {
			return true
		}
	}
	return false
}

// Unverified returns how many records could not be verified.
func (r Report) Unverified() int {
	n := 0
	for _, s := range r.Streams {
		n += s.Unverified
	}
	return n
}

// Report finishes the audit. ends, by device, are the devices' last
// statuses; a device's records after its highest seq present up to what
// its status reports delivered are missing.
func (a *Auditor) Report(ends map[string]End) Report {
	rep := Report{Malformed: a.malformed, MalformedLines: a.malformedLines}
	seen := map[string]bool{}
	for _, st := range a.streams {
		sr := a.finish(st)
		if end, ok := ends[st.device]; ok && end.Epoch == st.epoch {
			seen[st.device] = true
			if end.Delivered > sr.LastSeq {
				sr.Missing.addRange(sr.LastSeq+1, end.Delivered)
			}
		}
		rep.Streams = append(rep.Streams, sr)
	}
	for dev, end := range ends {
		if !seen[dev] && end.Epoch != "" && end.Delivered > 0 {
			sr := StreamReport{Device: dev, Epoch: end.Epoch}
			sr.Missing.addRange(1, end.Delivered)
			rep.Streams = append(rep.Streams, sr)
		}
	}
	slices.SortFunc(rep.Streams, func(x, y StreamReport) int {
		return cmp.Or(cmp.Compare(x.Device, y.Device), cmp.Compare(x.Epoch, y.Epoch))
	})
	return rep
}

func (a *Auditor) finish(st *stream) StreamReport {
	sr := StreamReport{Device: st.device, Epoch: st.epoch, Hall: st.hall, Counter: st.counter}
	es := st.entries
	slices.SortStableFunc(es, func(x, y entry) int { return cmp.Compare(x.seq, y.seq) })
	// One entry per seq; a second with other content is a conflict.
	kept := es[:0]
	for _, e := range es {
		if n := len(kept); n > 0 && kept[n-1].seq == e.seq {
			if kept[n-1].hash == e.hash {
				sr.Duplicates++
			} else if c := len(sr.Conflicts); c == 0 || sr.Conflicts[c-1].To != e.seq {
				sr.Conflicts.add(e.seq)
			}
			continue
		}
		kept = append(kept, e)
	}
	es = kept
	st.entries = es
	if len(es) == 0 {
		return sr
	}
	sr.Records, sr.FirstSeq, sr.LastSeq = len(es), es[0].seq, es[len(es)-1].seq
	if a.Complete && sr.FirstSeq > 1 {
		sr.Gaps.addRange(1, sr.FirstSeq-1)
	}
	for i, e := range es {
		if i > 0 && e.seq > es[i-1].seq+1 {
			sr.Gaps.addRange(es[i-1].seq+1, e.seq-1)
		}
		switch {
		case e.flags&fVerified != 0:
			sr.Verified++
		case e.flags&fNoKey != 0:
			sr.Unverified++
			if e.flags&fTOFU != 0 {
				sr.TOFU++
			}
		}
		if e.flags&fBadSig != 0 {
			sr.BadSignature.add(e.seq)
		}
		if e.flags&fUnsigned != 0 {
			sr.Unsigned.add(e.seq)
		}
		if e.flags&fWrongCounter != 0 {
			sr.WrongCounter.add(e.seq)
		}
		if e.flags&fAltered != 0 {
			sr.Altered.add(e.seq)
		}
		if linkBroken(es, i) {
			sr.ChainBreaks.add(e.seq)
		}
	}
	return sr
}

// linkBroken reports whether es[i] fails to link to its predecessor, when
// that predecessor is present (or es[i] is seq 1, which has none).
func linkBroken(es []entry, i int) bool {
	e := es[i]
	if !e.linked {
		return false
	}
	if e.prevBad {
		return true
	}
	if e.seq == 1 {
		return e.prevSet
	}
	if i == 0 || es[i-1].seq != e.seq-1 {
		return false // the predecessor is not here: a gap, reported as such
	}
	return !e.prevSet || e.prev != es[i-1].hash
}

// Write prints the report for people: one line per device epoch, then
// what failed, seq by seq.
func (r Report) Write(w io.Writer) error {
	var b strings.Builder
	for _, s := range r.Streams {
		fmt.Fprintf(&b, "%s epoch %s", s.Device, s.Epoch)
		if s.Hall != "" {
			fmt.Fprintf(&b, " (%s/%s)", s.Hall, s.Counter)
		}
		fmt.Fprintf(&b, ": %d records", s.Records)
		if s.Records > 0 {
			fmt.Fprintf(&b, " seq %d-%d", s.FirstSeq, s.LastSeq)
		}
		fmt.Fprintf(&b, ", %d verified, %d unverified", s.Verified, s.Unverified)
		if s.TOFU > 0 {
			fmt.Fprintf(&b, " (%d only under the key it announced itself)", s.TOFU)
		}
		if s.Duplicates > 0 {
			fmt.Fprintf(&b, ", %d duplicates", s.Duplicates)
		}
		for _, f := range []struct {
			name string
			seqs Seqs
		}{{"BAD SIGNATURE", s.BadSignature}, {"UNSIGNED", s.Unsigned}, {"WRONG COUNTER", s.WrongCounter},
			{"CHAIN BROKEN", s.ChainBreaks}, {"CONFLICTING COPIES", s.Conflicts}, {"GAPS", s.Gaps},
			{"MISSING (status says delivered)", s.Missing}, {"STORED COLUMNS ALTERED", s.Altered}} {
			if len(f.seqs) > 0 {
				fmt.Fprintf(&b, ", %s seq %s (%d)", f.name, f.seqs, f.seqs.Count())
			}
		}
		if !s.Flagged() {
			b.WriteString(", ok")
		}
		b.WriteByte('\n')
	}
	if r.Malformed > 0 {
		fmt.Fprintf(&b, "%d lines are not press records:\n", r.Malformed)
		for _, l := range r.MalformedLines {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	verdict := "nothing flagged"
	if r.Flagged() {
		verdict = "FLAGGED"
	}
	fmt.Fprintf(&b, "verify: %d device epochs, %s", len(r.Streams), verdict)
	if n := r.Unverified(); n > 0 {
		fmt.Fprintf(&b, ", %d records UNVERIFIED (no trusted key)", n)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("verify: write report: %w", err)
	}
	return nil
}
