// Package testenv decides what a test does when something it needs from
// the machine is missing: it skips, unless the variable that makes that
// thing required (HALLRATE_REQUIRE_*, all set in CI) is set, and then it
// fails.
package testenv

import (
	"os"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// Missing skips t for what is missing, or fails it when the environment
// variable require is set.
func Missing(t testing.TB, require, what string) {
	t.Helper()
	if os.Getenv(require) != "" {
		t.Fatalf("%s is set and %s", require, what)
	}
	t.Skip(what)
}

// ClockFunc is a clock whose Now is now, for a test that moves its time
// by hand; its timers run on the real clock.
func ClockFunc(now func() time.Time) clockwork.Clock { return funcClock{clockwork.NewRealClock(), now} }

type funcClock struct {
	clockwork.Clock
	now func() time.Time
}

func (c funcClock) Now() time.Time                  { return c.now() }
func (c funcClock) Since(t time.Time) time.Duration { return c.now().Sub(t) }
func (c funcClock) Until(t time.Time) time.Duration { return t.Sub(c.now()) }
