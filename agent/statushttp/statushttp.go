// Package statushttp serves the agent's local status endpoint: /healthz for
// a supervisor, /metrics for Prometheus and /status as JSON for
// "hallrate-agent status". It is read-only and meant for loopback.
package statushttp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/hallrate/hallrate/agent"
	"github.com/hallrate/hallrate/record"
)

// DefaultListen is the address that provisioning writes into a new
// configuration.
const DefaultListen = "127.0.0.1:9102"

// Source is what the endpoint reports on; [*agent.Agent] is one.
type Source interface {
	Snapshot() agent.Snapshot
}

var _ Source = (*agent.Agent)(nil)

// Status is the JSON document of /status.
type Status struct {
	Device  string `json:"device"`
	Hall    string `json:"hall"`
	Counter string `json:"counter"`
	Version string `json:"version"`

	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems,omitempty"`

	Connected bool  `json:"connected"`
	Connects  int64 `json:"connects"`
	Published int64 `json:"published"`
	Acked     int64 `json:"acked"`

	Epoch                string  `json:"epoch"`
	Pending              int64   `json:"pending"`
	LastSeq              uint64  `json:"last_seq"`
	OutboxFull           bool    `json:"outbox_full"`
	MaxRecords           int64   `json:"max_records"`
	OutboxBytes          int64   `json:"outbox_bytes"`
	OldestPendingSeconds float64 `json:"oldest_pending_seconds"`
	// Unconfirmed await the hall's stored acknowledgement; Resent were
	// published again for it; UnconfirmedDropped left without it.
	Unconfirmed        int64 `json:"unconfirmed"`
	UnconfirmedDropped int64 `json:"unconfirmed_dropped"`
	Resent             int64 `json:"resent"`
	StoredRefused      bool  `json:"stored_refused"`

	Ticket *record.TicketRef `json:"ticket"`

	Presses         map[record.Disposition]int64 `json:"presses"`
	WriteFailures   int64                        `json:"write_failures"`
	TicketsApplied  int64                        `json:"tickets_applied"`
	TicketsRejected int64                        `json:"tickets_rejected"`
	StuckButtons    []int                        `json:"stuck_buttons"`

	ClockSynced bool   `json:"clock_synced"`
	BootID      string `json:"boot_id"`
	UptimeMS    int64  `json:"uptime_ms"`
	At          string `json:"at"`
}

// StatusOf turns a snapshot into the /status document.
func StatusOf(s agent.Snapshot) Status {
	st := Status{
		Device: s.Device, Hall: s.Hall, Counter: s.Counter, Version: s.Version,
		Healthy: s.Health.OK(), Problems: s.Health.Problems,
		Connected: s.Connected, Connects: s.Uplink.Connects,
		Published: s.Uplink.Published, Acked: s.Uplink.Acked,
		Epoch: s.Epoch, Pending: s.Pending, LastSeq: s.LastSeq, OutboxFull: s.OutboxFull,
		MaxRecords: s.MaxRecords, OutboxBytes: s.OutboxBytes,
		OldestPendingSeconds: s.OldestPending.Seconds(),
		Unconfirmed:          s.Unconfirmed, UnconfirmedDropped: s.UnconfirmedDropped,
		Resent: s.Uplink.Resent, StoredRefused: s.Uplink.StoredRefused,
		Ticket:          s.Ticket,
		Presses:         s.Counters.Presses,
		WriteFailures:   s.Counters.WriteFailures,
		TicketsApplied:  s.Counters.TicketsApplied,
		TicketsRejected: s.Counters.TicketsRejected,
		StuckButtons:    []int{},
		ClockSynced:     s.ClockSynced, BootID: s.BootID,
		UptimeMS: s.Uptime.Milliseconds(),
		At:       s.At.Format(record.TimeLayout),
	}
	if s.Input != nil && s.Input.Stuck != nil {
		st.StuckButtons = s.Input.Stuck
	}
	return st
}

// Handler returns the endpoint's handler.
func Handler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		// A client that went away is no concern of the agent's.
		_ = writeMetrics(w, src)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		h := src.Snapshot().Health
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !h.OK() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "unhealthy: %s\n", strings.Join(h.Problems, "; "))
			return
		}
		fmt.Fprintln(w, "ok: outbox open, input driver running")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		// A client that went away is no concern of the agent's.
		_ = enc.Encode(StatusOf(src.Snapshot()))
	})
	return mux
}
