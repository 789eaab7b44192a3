package sysclock

import (
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// Fake is a [Clock] for tests: time moves only when Advance is called, and
// the timers and tickers made from it fire then.
type Fake struct {
	*clockwork.FakeClock
	mu sync.Mutex
	// wall is how far SetWall stepped the wall clock from the fake's.
	wall   time.Duration
	uptime time.Duration
	synced bool
	bootID string
}

var _ Clock = (*Fake)(nil)

// NewFake starts a fake clock at now, synchronised, with the given boot id.
func NewFake(now time.Time, bootID string) *Fake {
	return &Fake{FakeClock: clockwork.NewFakeClockAt(now), uptime: time.Minute, synced: true, bootID: bootID}
}

// Now returns the fake wall time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.FakeClock.Now().Add(f.wall)
}

// Synced returns what SetSynced last set.
func (f *Fake) Synced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.synced
}

// Uptime returns the fake time since boot.
func (f *Fake) Uptime() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.uptime
}

// BootID returns the fake boot id.
func (f *Fake) BootID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bootID
}

// Advance moves wall time and uptime forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.uptime += d
	f.mu.Unlock()
	f.FakeClock.Advance(d)
}

// SetWall steps the wall clock without moving uptime, as NTP or a user would.
func (f *Fake) SetWall(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall = t.Sub(f.FakeClock.Now())
}

// SetSynced sets the answer of Synced.
func (f *Fake) SetSynced(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced = v
}

// Reboot simulates a new boot: a new boot id and uptime restarting near zero.
func (f *Fake) Reboot(bootID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bootID = bootID
	f.uptime = 10 * time.Second
}
