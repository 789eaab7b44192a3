package store

import (
	"fmt"
	"strings"
)

// Range is an inclusive range of seq numbers; in JSON {"from":5,"to":7},
// cased like every other key of the API.
type Range struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

func (r Range) String() string {
	if r.From == r.To {
		return fmt.Sprint(r.From)
	}
	return fmt.Sprintf("%d-%d", r.From, r.To)
}

// Len returns the number of seqs in r.
func (r Range) Len() uint64 { return r.To - r.From + 1 }

// Ranges is a sorted list of disjoint, non-adjacent ranges.
type Ranges []Range

func (rs Ranges) String() string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}

// Count returns the number of seqs in rs.
func (rs Ranges) Count() uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Len()
	}
	return n
}

// remove returns rs without seq, splitting the range that held it.
func (rs Ranges) remove(seq uint64) Ranges {
	for i, r := range rs {
		if seq < r.From || seq > r.To {
			continue
		}
		var mid Ranges
		if seq > r.From {
			mid = append(mid, Range{r.From, seq - 1})
		}
		if seq < r.To {
			mid = append(mid, Range{seq + 1, r.To})
		}
		out := append(Ranges{}, rs[:i]...)
		out = append(out, mid...)
		return append(out, rs[i+1:]...)
	}
	return rs
}

// upTo returns the part of rs at or below limit.
func (rs Ranges) upTo(limit uint64) Ranges {
	var out Ranges
	for _, r := range rs {
		if r.From > limit {
			break
		}
		out = append(out, Range{r.From, min(r.To, limit)})
	}
	return out
}
