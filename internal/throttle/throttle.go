// Package throttle decides which of a run of repeated events is logged:
// the first few, then one in so many, so that a failure repeating for
// hours (a broker away, a database refusing, a flood of junk) cannot fill
// an SD card or a journal, and its count still shows in the lines kept.
package throttle

// Every logs the first First events of a run, then every Nth (none when
// Nth is 0).
type Every struct {
	First, Nth int64
}

// Log reports whether event n of a run, counted from 1, is logged.
func (e Every) Log(n int64) bool {
	return n >= 1 && (n <= e.First || (e.Nth > 0 && n%e.Nth == 0))
}

// Failures is the rule for a failing loop that retries: its first three
// failures, then every hundredth.
func Failures() Every { return Every{First: 3, Nth: 100} }

// Refusals is the rule for refused input from outside: the first ten,
// then every hundredth.
func Refusals() Every { return Every{First: 10, Nth: 100} }
