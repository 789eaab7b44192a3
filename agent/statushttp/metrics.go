package statushttp

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/hallrate/hallrate/record"
)

// The agent's series are written here in the Prometheus text format, one
// snapshot per scrape so that every series of a scrape describes the same
// moment. client_golang, which wrote them before, brought protobuf, a YAML
// package and procfs: 2.1 MB of the armv6 build. VictoriaMetrics/metrics,
// the small library made for this, still costs 330 KB there, most of it the
// regexp package its validator compiles at start; 23 gauges and counters and
// the usual go_* and process_* series are a page of code (docs/benchmarks.md).

// metric is one series family of the agent.
type metric struct {
	name, kind, help string
}

var (
	mInfo            = metric{"hallrate_agent_info", "gauge", "Always 1; labels identify the terminal and its software."}
	mHealthy         = metric{"hallrate_agent_healthy", "gauge", "1 when the outbox is open and the input driver is running (what /healthz answers 200 for)."}
	mInputRunning    = metric{"hallrate_agent_input_running", "gauge", "1 while the input driver is running."}
	mConnected       = metric{"hallrate_agent_broker_connected", "gauge", "1 while a session with the broker is up."}
	mPresses         = metric{"hallrate_agent_presses_total", "counter", "Presses recorded in the outbox, by disposition."}
	mWriteFailures   = metric{"hallrate_agent_press_write_failures_total", "counter", "Presses that could not be written to the outbox (lost; the citizen saw the error feedback)."}
	mPublished       = metric{"hallrate_agent_records_published_total", "counter", "Records published to the broker, counting resends."}
	mAcked           = metric{"hallrate_agent_records_acked_total", "counter", "Records acknowledged by the broker and removed from the outbox."}
	mConnects        = metric{"hallrate_agent_broker_connects_total", "counter", "Sessions established with the broker."}
	mReconnects      = metric{"hallrate_agent_broker_reconnects_total", "counter", "Sessions established after the first one."}
	mPending         = metric{"hallrate_agent_records_pending", "gauge", "Records in the outbox not yet acknowledged by the broker."}
	mOldest          = metric{"hallrate_agent_oldest_pending_age_seconds", "gauge", "Age of the oldest record not yet acknowledged; 0 when none is pending."}
	mLastSeq         = metric{"hallrate_agent_last_seq", "gauge", "Sequence number of the last record written in this epoch."}
	mOutboxBytes     = metric{"hallrate_agent_outbox_size_bytes", "gauge", "Size of the outbox file (it does not shrink)."}
	mOutboxFull      = metric{"hallrate_agent_outbox_full", "gauge", "1 while the outbox holds buffer.max_records or more (an alarm: nothing is dropped)."}
	mUnconfirmed     = metric{"hallrate_agent_records_unconfirmed", "gauge", "Records the broker acknowledged that the hall has not yet said it stored (kept for the stored acknowledgement)."}
	mUnconfDropped   = metric{"hallrate_agent_records_unconfirmed_dropped_total", "counter", "Records that left the outbox without the hall's confirmation, pushed out by buffer.keep_unconfirmed or keep_unconfirmed_age (an alarm)."}
	mResent          = metric{"hallrate_agent_records_resent_total", "counter", "Records published again because the hall's stored acknowledgement lacked them."}
	mMaxRecords      = metric{"hallrate_agent_outbox_max_records", "gauge", "The configured alarm threshold buffer.max_records."}
	mStuck           = metric{"hallrate_agent_buttons_stuck", "gauge", "Buttons held down longer than the stuck limit right now."}
	mStuckEvents     = metric{"hallrate_agent_button_stuck_events_total", "counter", "Times a button was found stuck."}
	mGlitches        = metric{"hallrate_agent_button_glitches_total", "counter", "Bursts of button activity too short to be a press."}
	mTicketsApplied  = metric{"hallrate_agent_ticket_messages_applied_total", "counter", "Ticket messages accepted."}
	mTicketsRejected = metric{"hallrate_agent_ticket_messages_rejected_total", "counter", "Ticket messages rejected as malformed or unsupported."}
	mDrops           = metric{"hallrate_agent_ticket_messages_dropped_total", "counter", "Good ticket messages replaced by a newer one before the agent applied them (the newest wins)."}
	mClockSynced     = metric{"hallrate_agent_clock_synced", "gauge", "1 when the kernel reports the wall clock synchronised (adjtimex)."}
	mReasons         = metric{"hallrate_agent_reasons_total", "counter", "Reason records written: the reason a citizen gave for a 差评."}
	mVoicePlayed     = metric{"hallrate_agent_voice_prompts_played_total", "counter", "Voice prompts played to the end or cut by a newer one."}
	mVoiceFailed     = metric{"hallrate_agent_voice_prompts_failed_total", "counter", "Voice prompts that could not be played (missing player or file, player error)."}
	mVoiceWorking    = metric{"hallrate_agent_voice_working", "gauge", "0 while the last voice prompt failed; absent when voice is off."}
)

// expo writes series in the Prometheus text format.
type expo struct{ w *bufio.Writer }

// family writes the HELP and TYPE lines of m.
func (e expo) family(m metric) {
	e.w.WriteString("# HELP " + m.name + " " + m.help + "\n")
	e.w.WriteString("# TYPE " + m.name + " " + m.kind + "\n")
}

// sample writes one series of m; labels are name, value pairs.
func (e expo) sample(m metric, v float64, labels ...string) {
	e.w.WriteString(m.name)
	for i := 0; i+1 < len(labels); i += 2 {
		if i == 0 {
			e.w.WriteByte('{')
		} else {
			e.w.WriteByte(',')
		}
		e.w.WriteString(labels[i] + `="` + escapeLabel(labels[i+1]) + `"`)
		if i+2 >= len(labels) {
			e.w.WriteByte('}')
		}
	}
	e.w.WriteByte(' ')
	e.w.WriteString(formatValue(v))
	e.w.WriteByte('\n')
}

// one writes a family of a single series.
func (e expo) one(m metric, v float64, labels ...string) {
	e.family(m)
	e.sample(m, v, labels...)
}

// escapeLabel escapes a label value as the text format asks: backslash,
// double quote and line feed.
func escapeLabel(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// writeMetrics writes the agent's own series from one snapshot, then the
// Go runtime's and the process's.
func writeMetrics(w io.Writer, src Source) error {
	s := src.Snapshot()
	bw := bufio.NewWriter(w)
	e := expo{bw}
	e.one(mInfo, 1, "counter", s.Counter, "device", s.Device, "epoch", s.Epoch, "hall", s.Hall, "version", s.Version)
	e.one(mHealthy, bit(s.Health.OK()))
	e.one(mInputRunning, bit(s.Health.InputRunning))
	e.one(mConnected, bit(s.Connected))
	// Every disposition is always present, so a rate() never starts from
	// a missing series.
	e.family(mPresses)
	for _, d := range []record.Disposition{record.Counted, record.Late, record.NoTicket, record.Repeat} {
		e.sample(mPresses, float64(s.Counters.Presses[d]), "disposition", string(d))
	}
	e.one(mWriteFailures, float64(s.Counters.WriteFailures))
	e.one(mPublished, float64(s.Uplink.Published))
	e.one(mAcked, float64(s.Uplink.Acked))
	e.one(mConnects, float64(s.Uplink.Connects))
	e.one(mReconnects, float64(max(s.Uplink.Connects-1, 0)))
	e.one(mPending, float64(s.Pending))
	e.one(mOldest, s.OldestPending.Seconds())
	e.one(mLastSeq, float64(s.LastSeq))
	if s.OutboxBytes >= 0 {
		e.one(mOutboxBytes, float64(s.OutboxBytes))
	}
	e.one(mOutboxFull, bit(s.OutboxFull))
	e.one(mMaxRecords, float64(s.MaxRecords))
	e.one(mUnconfirmed, float64(s.Unconfirmed))
	e.one(mUnconfDropped, float64(s.UnconfirmedDropped))
	e.one(mResent, float64(s.Uplink.Resent))
	var stuck, stuckEvents, glitches int64
	if s.Input != nil {
		stuck, stuckEvents, glitches = int64(len(s.Input.Stuck)), s.Input.StuckEvents, s.Input.Glitches
	}
	e.one(mStuck, float64(stuck))
	e.one(mStuckEvents, float64(stuckEvents))
	e.one(mGlitches, float64(glitches))
	e.one(mTicketsApplied, float64(s.Counters.TicketsApplied))
	e.one(mTicketsRejected, float64(s.Counters.TicketsRejected))
	e.one(mDrops, float64(s.Uplink.TicketDropped))
	e.one(mClockSynced, bit(s.ClockSynced))
	e.one(mReasons, float64(s.Counters.Reasons))
	if s.Voice != nil {
		e.one(mVoicePlayed, float64(s.Voice.Played))
		e.one(mVoiceFailed, float64(s.Voice.Failed))
		e.one(mVoiceWorking, bit(s.Voice.Working))
	}
	writeRuntime(e)
	writeProcess(e)
	return bw.Flush()
}

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
