// Package sysclock tells the agent what it may believe about time on a board
// without a real-time clock: the wall clock, whether the kernel considers it
// synchronised, the time since boot, and which boot this is.
package sysclock

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/sys/unix"
)

// Clock is the agent's source of time. It is a [clockwork.Clock], the one
// way both binaries are given time (Now, timers and tickers, with a fake
// for tests), and more: what a board without a real-time clock may believe
// of it. Now carries Go's monotonic reading, so durations between two Now
// values are immune to clock steps.
type Clock interface {
	clockwork.Clock
	// Synced reports whether the kernel's wall clock is known to be
	// synchronised (NTP or similar).
	Synced() bool
	// Uptime is the time since boot, including suspend (CLOCK_BOOTTIME).
	Uptime() time.Duration
	// BootID identifies this boot of the machine.
	BootID() string
}

// System is the [Clock] of the running machine.
type System struct {
	clockwork.Clock
	bootID string
}

var _ Clock = (*System)(nil)

// NewSystem reads the boot id from bootIDPath (normally
// /proc/sys/kernel/random/boot_id).
func NewSystem(bootIDPath string) (*System, error) {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return nil, fmt.Errorf("read boot id: %w", err)
	}
	return &System{Clock: clockwork.NewRealClock(), bootID: strings.TrimSpace(string(b))}, nil
}

// BootID returns the id read at construction.
func (s *System) BootID() string { return s.bootID }

// Uptime reads CLOCK_BOOTTIME.
func (s *System) Uptime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// Synced asks the kernel, as timedatectl's NTPSynchronized does: the clock
// is synchronised when adjtimex does not report STA_UNSYNC.
func (s *System) Synced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}
