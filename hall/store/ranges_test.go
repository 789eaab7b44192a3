package store

import "testing"

func TestRanges(t *testing.T) {
	rs := Ranges{{1, 5}, {8, 8}}
	rs = rs.remove(3)
	rs = rs.remove(8)
	rs = rs.remove(1)
	if got := rs.String(); got != "2,4-5" {
		t.Fatalf("got %s", got)
	}
	if got := (Ranges{{2, 2}, {4, 9}}).upTo(5).String(); got != "2,4-5" {
		t.Fatalf("upTo: %s", got)
	}
}
