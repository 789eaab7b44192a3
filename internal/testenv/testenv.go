// Package testenv decides what a test does when something it needs from
// the machine is missing: it skips, unless the variable that makes that
// thing required (HALLRATE_REQUIRE_*, all set in CI) is set, and then it
// fails.
package testenv

import (
	"os"
	"testing"
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
