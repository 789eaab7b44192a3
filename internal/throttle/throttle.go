// Package throttle decides which of a run of repeated events is logged:
// the first few, then one in so many, so that a failure repeating for
// hours (a broker away, a database refusing, a flood of junk) cannot fill
// an SD card or a journal, and its count still shows in the lines kept.
package throttle

// Every logs the first First events of a run, then every Nth (none when
// Nth is 0), or, with Doubling, each whose number is a power of two: the
// lines of a flood grow with its logarithm.
type Every struct {
	First, Nth int64
	Doubling   bool
}

// Log reports whether event n of a run, counted from 1, is logged.
func (e Every) Log(n int64) bool {
	switch {
	case n < 1:
		return false
	case n <= e.First:
		return true
	case e.Doubling:
		return n&(n-1) == 0
	}
	return e.Nth > 0 && n%e.Nth == 0
}

// Failures is the rule for a failing loop that retries: its first three
// failures, then every hundredth.
func Failures() Every { return Every{First: 3, Nth: 100} }

// Flood is the rule for what an attacker can send without end on a
// terminal's SD card: the first ten, then the 16th, 32nd, 64th...
func Flood() Every { return Every{First: 10, Doubling: true} }

// Refusals is the rule for refused input from outside: the first ten,
// then every hundredth.
func Refusals() Every { return Every{First: 10, Nth: 100} }
