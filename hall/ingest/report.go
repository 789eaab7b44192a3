package ingest

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/record"
)

// satisfactionNames are the national 好差评 names of the satisfaction codes.
var satisfactionNames = [...]string{
	1: "非常不满意",
	2: "不满意",
	3: "基本满意",
	4: "满意",
	5: "非常满意",
}

// SatisfactionName returns the national name of a satisfaction code 1..5.
func SatisfactionName(code int) string {
	if code < 1 || code >= len(satisfactionNames) {
		return "?"
	}
	return satisfactionNames[code]
}

// Describe returns a one-line account of a record for people watching the
// collector, for example
//
//	W05  A023 (S017)  非常满意 very_satisfied  counted    w05-a:9f2c41d7:42
func Describe(p record.Press) string {
	ticket := "-"
	if p.Ticket != nil {
		ticket = shown(p.Ticket.ID)
		if p.Ticket.Staff != "" {
			ticket += " (" + shown(p.Ticket.Staff) + ")"
		}
	}
	if p.IsReason() && p.Reason != nil {
		return fmt.Sprintf("%-4s %-12s 原因 %s (%s) for %s  %s", p.Counter, ticket, shown(p.Reason.Label), shown(p.Reason.Code), shown(p.For), p.ID)
	}
	return fmt.Sprintf("%-4s %-12s %s %-14s %-9s  %s",
		p.Counter, ticket, SatisfactionName(p.Satisfaction), shown(p.Label), p.Disposition, p.ID)
}

// shown is a field from outside as one line of the console can show it: a
// text with a line break, another control character, a direction override
// or invalid UTF-8 is printed quoted with escapes, so it can neither forge
// a line nor reorder one. The door rules refuse such text already; this is
// the console's own guard.
func shown(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) }) >= 0 {
		return strconv.QuoteToGraphic(s)
	}
	return s
}

// PrintAudit writes the audit for people, one line per device epoch and
// per device status.
func PrintAudit(w io.Writer, a store.Audit, s Stats) error {
	var b strings.Builder
	fmt.Fprintf(&b, "audit: %d records stored (%d this run), %d duplicates dropped, %d malformed messages, %d gaps opened, %d seqs received late\n",
		a.Stored, s.Stored, s.Duplicates, s.Malformed, s.Gaps, s.Filled)
	for _, st := range a.Streams {
		fmt.Fprintf(&b, "audit: %s epoch %s: %d records, seq up to %d", st.Device, st.Epoch, st.Received, st.MaxSeq)
		if len(st.Gaps) > 0 {
			fmt.Fprintf(&b, ", MISSING seq %s (%d)", st.Gaps, st.Gaps.Count())
		} else {
			b.WriteString(", no gaps")
		}
		b.WriteByte('\n')
	}
	for _, d := range a.Devices {
		state := "offline"
		if d.Online {
			state = "online"
		}
		fmt.Fprintf(&b, "audit: %s at %s/%s %s", d.Device, d.Hall, d.Counter, state)
		switch {
		case !d.Audited:
			b.WriteString(", no last_seq reported yet")
		case len(d.Missing) > 0:
			fmt.Fprintf(&b, ", reports epoch %s last_seq %d pending %d: MISSING seq %s (%d)",
				d.Epoch, d.LastSeq, d.Pending, d.Missing, d.Missing.Count())
		default:
			fmt.Fprintf(&b, ", reports epoch %s last_seq %d pending %d: all delivered records received",
				d.Epoch, d.LastSeq, d.Pending)
		}
		b.WriteByte('\n')
	}
	for _, c := range a.Trust {
		fmt.Fprintf(&b, "audit: %s/%s: %d records verified, %d unverified", c.Hall, c.Counter, c.Verified, c.Unverified)
		if c.TOFU > 0 {
			fmt.Fprintf(&b, " (%d only under a key the device announced)", c.TOFU)
		}
		if c.Flagged > 0 {
			fmt.Fprintf(&b, ", %d FAILED VERIFICATION", c.Flagged)
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
