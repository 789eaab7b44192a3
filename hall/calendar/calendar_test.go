package calendar

import (
	"testing"
	"time"
)

func TestAddWorkingDays(t *testing.T) {
	sh, _ := time.LoadLocation("Asia/Shanghai")
	c, err := Parse([]byte(`# 2026 National Day
2026-10-01 holiday
2026-10-02 holiday
2026-10-05 holiday
2026-10-10 workday   # Saturday worked
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from string
		n    int
		want string
	}{
		{"2026-11-24", 7, "2026-12-03"}, // Tuesday: the contract's example
		{"2026-11-27", 1, "2026-11-30"}, // Friday -> Monday
		{"2026-11-28", 1, "2026-11-30"}, // Saturday -> Monday
		{"2026-09-30", 1, "2026-10-06"}, // holidays skipped
		{"2026-10-09", 1, "2026-10-10"}, // working Saturday
		{"2026-11-24", 0, "2026-11-24"},
	} {
		from, _ := time.ParseInLocation(DateLayout, tc.from, sh)
		if got := c.AddWorkingDays(from.Add(23*time.Hour), tc.n).Format(DateLayout); got != tc.want {
			t.Errorf("%s + %d working days = %s, want %s", tc.from, tc.n, got, tc.want)
		}
	}
	var zero Calendar
	if !zero.Working(time.Date(2026, 10, 1, 0, 0, 0, 0, sh)) {
		t.Error("zero calendar: a Thursday is not working")
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"2026-13-01 holiday", "2026-10-01", "2026-10-01 party"} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}
