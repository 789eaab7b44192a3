// Package doctest holds the tests that keep README.md and docs/ true: every
// configuration block they show loads in the binary it belongs to.
package doctest
