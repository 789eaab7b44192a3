// Package calendar knows the hall's working days: Monday to Friday, less
// the public holidays, plus the weekend days worked in their place (调休),
// as listed in a file the hall keeps up to date each year.
package calendar

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"
)

// DateLayout is how days are written: 2006-01-02.
const DateLayout = time.DateOnly

// Calendar is a hall's working calendar. The zero Calendar has weekends
// off and no holidays.
type Calendar struct {
	off  map[string]bool // holidays on weekdays
	work map[string]bool // weekend days worked
}

// Load reads a calendar file: one day a line, "2026-10-01 holiday" or
// "2026-10-11 workday"; "#" starts a comment; blank lines are skipped.
func Load(path string) (Calendar, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Calendar{}, fmt.Errorf("calendar: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return Calendar{}, fmt.Errorf("calendar: %s: %w", path, err)
	}
	return c, nil
}

// Parse reads the calendar file format of [Load].
func Parse(data []byte) (Calendar, error) {
	c := Calendar{off: map[string]bool{}, work: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return Calendar{}, fmt.Errorf("line %d: want \"YYYY-MM-DD holiday|workday\"", n)
		}
		d, err := time.Parse(DateLayout, f[0])
		if err != nil {
			return Calendar{}, fmt.Errorf("line %d: %q is not a date YYYY-MM-DD", n, f[0])
		}
		day := d.Format(DateLayout)
		switch f[1] {
		case "holiday":
			c.off[day], c.work[day] = true, false
		case "workday":
			c.work[day], c.off[day] = true, false
		default:
			return Calendar{}, fmt.Errorf("line %d: %q is neither holiday nor workday", n, f[1])
		}
	}
	if err := sc.Err(); err != nil {
		return Calendar{}, err
	}
	return c, nil
}

// Working reports whether the date of t (in t's location) is a working day.
func (c Calendar) Working(t time.Time) bool {
	day := t.Format(DateLayout)
	if c.work[day] {
		return true
	}
	if c.off[day] {
		return false
	}
	wd := t.Weekday()
	return wd != time.Saturday && wd != time.Sunday
}

// maxScan bounds the days AddWorkingDays looks through: a year of
// holidays cannot be longer.
const maxScan = 3660

// AddWorkingDays returns the date n working days after the date of t: with
// n = 7, a bad rating on a Tuesday with no holidays is due the Thursday of
// the next week. The day of t itself does not count.
func (c Calendar) AddWorkingDays(t time.Time, n int) time.Time {
	d := time.Date(t.Year(), t.Month(), t.Day(), 12, 0, 0, 0, t.Location())
	for i := 0; n > 0 && i < maxScan; i++ {
		d = d.AddDate(0, 0, 1)
		if c.Working(d) {
			n--
		}
	}
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, t.Location())
}
