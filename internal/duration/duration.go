// Package duration is the one way both configuration files write a span
// of time: a string such as "30s" or "1m30s". BurntSushi/toml would also
// take a bare number for a time.Duration, as nanoseconds, so that
// keepalive = 30 would mean 30 ns; this type refuses it.
package duration

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written as a string such as "30s".
type Duration struct{ time.Duration }

// Of returns d as a Duration.
func Of(d time.Duration) Duration { return Duration{d} }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration: %q (write it as \"30s\", \"5m\" or \"1h30m\")", string(b))
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
