package collector

import (
	"strings"
	"testing"
	"time"
)

type stuckAt struct {
	since time.Time
	why   string
}

func (s stuckAt) Stuck() (time.Time, string) { return s.since, s.why }

func TestHealthSaysIngestIsStuck(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	if got := stuck(stuckAt{}, t0); got != nil {
		t.Fatalf("moving ingest: %v", got)
	}
	s := stuckAt{t0, "store: save batch: insert 1 ratings: connection refused\nsecond line"}
	if got := stuck(s, t0.Add(time.Minute)); got != nil {
		t.Fatalf("stuck a minute: %v", got)
	}
	got := stuck(s, t0.Add(61*time.Second))
	if len(got) != 1 || !strings.HasPrefix(got[0], "ingest: stuck for 1m1s: store: save batch") || strings.Contains(got[0], "\n") {
		t.Fatalf("stuck 61 s: %q", got)
	}
}
