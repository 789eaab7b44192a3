// Package watchdog tells systemd that the agent is ready and alive, and
// only while it is healthy: the first healthy heartbeat sends READY=1, and
// later healthy ones send WATCHDOG=1 at half the watchdog interval. An
// unhealthy agent sends nothing, so systemd kills and restarts it when
// WatchdogSec= runs out.
package watchdog

import (
	"log/slog"
	"strings"
	"time"

	"github.com/hallrate/hallrate/agent"
	"github.com/hallrate/hallrate/internal/throttle"
	"github.com/jonboulle/clockwork"
)

// Config configures a [Watchdog].
type Config struct {
	// Notify sends one sd_notify message, such as "READY=1".
	Notify func(state string) error
	// Interval is the service's WatchdogSec=; zero sends READY only.
	Interval time.Duration
	Clock    clockwork.Clock
	Logger   *slog.Logger
}

// Watchdog turns heartbeats into sd_notify messages. Its Beat method is
// called from one goroutine (the agent's main loop).
type Watchdog struct {
	cfg      Config
	ready    bool
	last     time.Time
	problems string
	failures int
}

// New returns a watchdog.
func New(cfg Config) *Watchdog {
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Watchdog{cfg: cfg}
}

// Beat is the agent's heartbeat: see [agent.Parts.Heartbeat].
func (w *Watchdog) Beat(h agent.Health) {
	problems := strings.Join(h.Problems, "; ")
	if problems != w.problems {
		w.transition(problems)
	}
	if !h.OK() {
		return
	}
	now := w.cfg.Clock.Now()
	if !w.ready {
		if w.send("READY=1\nSTATUS=recording presses") {
			w.ready, w.last = true, now
		}
		return
	}
	if w.cfg.Interval > 0 && now.Sub(w.last) >= w.cfg.Interval/2 {
		if w.send("WATCHDOG=1") {
			w.last = now
		}
	}
}

func (w *Watchdog) transition(problems string) {
	w.problems = problems
	if problems == "" {
		w.cfg.Logger.Info("healthy again: watchdog pings resume")
		w.send("STATUS=recording presses")
		return
	}
	w.cfg.Logger.Error("unhealthy: watchdog pings withheld", "problems", problems, "watchdog", w.cfg.Interval)
	w.send("STATUS=unhealthy: " + problems)
}

// send reports whether the message went out. A failure is logged for the
// first few and then every 100th time: it repeats on every heartbeat.
func (w *Watchdog) send(state string) bool {
	if err := w.cfg.Notify(state); err != nil {
		w.failures++
		if throttle.Failures().Log(int64(w.failures)) {
			w.cfg.Logger.Warn("sd_notify failed", "err", err, "failures", w.failures)
		}
		return false
	}
	return true
}
