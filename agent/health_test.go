package agent

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallrate/hallrate/buffer"
	"github.com/hallrate/hallrate/device"
	"github.com/hallrate/hallrate/sysclock"
)

// waitFor polls cond on the agent's own heartbeat cadence, with a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// breakable is an outbox whose writes fail while broken is set, like a
// disk that fills up and is then cleared.
type breakable struct {
	*buffer.Memory
	broken atomic.Bool
}

var errNoSpace = errors.New("write outbox.db: no space left on device")

func (b *breakable) Append(build buffer.BuildFunc, state []byte) (uint64, error) {
	if b.broken.Load() {
		return 0, errNoSpace
	}
	return b.Memory.Append(build, state)
}

func (b *breakable) SaveState(state []byte) error {
	if b.broken.Load() {
		return errNoSpace
	}
	return b.Memory.SaveState(state)
}

func TestHealthFollowsOutboxWrites(t *testing.T) {
	m, _ := buffer.NewMemory()
	o := &breakable{Memory: m}
	src, fb := make(chanSource), newEvents()
	a := newAgent(t, o, src, fb, 100)
	if h := a.Health(); h.OK() || h.InputRunning {
		t.Fatalf("an agent that is not running is healthy: %+v", h)
	}
	stop := run(t, a)
	defer stop()
	waitFor(t, "healthy after start", func() bool { return a.Health().OK() })

	o.broken.Store(true)
	src <- device.Press{Button: 1, At: time.Now()}
	fb.waitN(t, 1)
	h := a.Health()
	if h.OK() || h.OutboxOK || !h.InputRunning || len(h.Problems) != 1 || !strings.Contains(h.Problems[0], "no space") {
		t.Fatalf("health after a failed write: %+v", h)
	}

	// The disk is cleared: the paced write probe finds out without a press.
	o.broken.Store(false)
	a.clock.(*sysclock.Fake).Advance(reprobeEvery)
	waitFor(t, "healthy after the outbox can be written again", func() bool { return a.Health().OK() })
}

func TestHealthClosedOutbox(t *testing.T) {
	o, err := buffer.Open(filepath.Join(t.TempDir(), "outbox.db"), buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := newAgent(t, o, make(chanSource), newEvents(), 100)
	stop := run(t, a)
	defer stop()
	waitFor(t, "healthy after start", func() bool { return a.Health().OK() })
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unhealthy with the outbox closed", func() bool {
		h := a.Health()
		return !h.OutboxOK && len(h.Problems) == 1 && strings.Contains(h.Problems[0], "outbox")
	})
}

// failingSource is an input driver that loses its device.
type failingSource chan error

func (f failingSource) Run(ctx context.Context, _ chan<- device.Press) error { return <-f }

func TestHealthInputStopped(t *testing.T) {
	o, _ := buffer.NewMemory()
	src := make(failingSource)
	a := newAgent(t, o, src, newEvents(), 100)
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	waitFor(t, "healthy after start", func() bool { return a.Health().OK() })
	src <- errors.New("gpiochip0: no such device")
	if err := <-done; err == nil || !strings.Contains(err.Error(), "input driver") {
		t.Fatalf("run returned %v", err)
	}
	if h := a.Health(); h.OK() || h.InputRunning || !h.OutboxOK || h.Problems[0] != "input driver not running" {
		t.Fatalf("health with the input stopped: %+v", h)
	}
}

func TestSnapshotOldestPending(t *testing.T) {
	o, err := buffer.Open(filepath.Join(t.TempDir(), "outbox.db"), buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	a := newAgent(t, o, make(chanSource), newEvents(), 2)
	clock := a.clock.(*sysclock.Fake)
	a.press(device.Press{Button: 1, At: clock.Now()})
	clock.Advance(90 * time.Second)
	a.press(device.Press{Button: 2, At: clock.Now()})
	s := a.Snapshot()
	if s.Pending != 2 || s.LastSeq != 2 || !s.OutboxFull || s.OutboxBytes <= 0 || s.OldestPending != 90*time.Second ||
		s.Counters.Presses["no_ticket"] != 2 || s.BootID != "boot" || s.Connected {
		t.Fatalf("snapshot %+v", s)
	}
	// After a reboot the uptime in the record means nothing: the wall clock
	// gives the age.
	clock.Reboot("boot2")
	clock.Advance(10 * time.Second)
	// pressed_at carries milliseconds.
	if s := a.Snapshot(); s.OldestPending.Truncate(time.Millisecond) != 100*time.Second {
		t.Fatalf("oldest pending after a reboot: %s", s.OldestPending)
	}
}
