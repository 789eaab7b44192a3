package statushttp

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallrate/hallrate/record"
)

// collector reads one snapshot per scrape, so every metric of a scrape
// describes the same moment.
type collector struct {
	src Source

	info, healthy, inputRunning, connected                               *prometheus.Desc
	presses, writeFailures, published, acked, connects, reconnects       *prometheus.Desc
	pending, oldest, lastSeq, outboxBytes, outboxFull, maxRecords        *prometheus.Desc
	stuck, stuckEvents, glitches, ticketsApplied, ticketsRejected, drops *prometheus.Desc
	clockSynced                                                          *prometheus.Desc
}

func newCollector(src Source) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("hallrate_agent_"+name, help, labels, nil)
	}
	return &collector{
		src:             src,
		info:            d("info", "Always 1; labels identify the terminal and its software.", "version", "device", "hall", "counter", "epoch"),
		healthy:         d("healthy", "1 when the outbox is open and the input driver is running (what /healthz answers 200 for)."),
		inputRunning:    d("input_running", "1 while the input driver is running."),
		connected:       d("broker_connected", "1 while a session with the broker is up."),
		presses:         d("presses_total", "Presses recorded in the outbox, by disposition.", "disposition"),
		writeFailures:   d("press_write_failures_total", "Presses that could not be written to the outbox (lost; the citizen saw the error feedback)."),
		published:       d("records_published_total", "Records published to the broker, counting resends."),
		acked:           d("records_acked_total", "Records acknowledged by the broker and removed from the outbox."),
		connects:        d("broker_connects_total", "Sessions established with the broker."),
		reconnects:      d("broker_reconnects_total", "Sessions established after the first one."),
		pending:         d("records_pending", "Records in the outbox not yet acknowledged by the broker."),
		oldest:          d("oldest_pending_age_seconds", "Age of the oldest record not yet acknowledged; 0 when none is pending."),
		lastSeq:         d("last_seq", "Sequence number of the last record written in this epoch."),
		outboxBytes:     d("outbox_size_bytes", "Size of the outbox file (it does not shrink)."),
		outboxFull:      d("outbox_full", "1 while the outbox holds buffer.max_records or more (an alarm: nothing is dropped)."),
		maxRecords:      d("outbox_max_records", "The configured alarm threshold buffer.max_records."),
		stuck:           d("buttons_stuck", "Buttons held down longer than the stuck limit right now."),
		stuckEvents:     d("button_stuck_events_total", "Times a button was found stuck."),
		glitches:        d("button_glitches_total", "Bursts of button activity too short to be a press."),
		ticketsApplied:  d("ticket_messages_applied_total", "Ticket messages accepted."),
		ticketsRejected: d("ticket_messages_rejected_total", "Ticket messages rejected as malformed or unsupported."),
		drops:           d("ticket_messages_dropped_total", "Ticket messages dropped because the agent was not reading them fast enough."),
		clockSynced:     d("clock_synced", "1 when the kernel reports the wall clock synchronised (adjtimex)."),
	}
}

// Describe implements [prometheus.Collector].
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.info, c.healthy, c.inputRunning, c.connected,
		c.presses, c.writeFailures, c.published, c.acked, c.connects, c.reconnects,
		c.pending, c.oldest, c.lastSeq, c.outboxBytes, c.outboxFull, c.maxRecords,
		c.stuck, c.stuckEvents, c.glitches, c.ticketsApplied, c.ticketsRejected, c.drops,
		c.clockSynced,
	} {
		ch <- d
	}
}

// Collect implements [prometheus.Collector].
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.info, 1, s.Version, s.Device, s.Hall, s.Counter, s.Epoch)
	gauge(c.healthy, bit(s.Health.OK()))
	gauge(c.inputRunning, bit(s.Health.InputRunning))
	gauge(c.connected, bit(s.Connected))
	// Every disposition is always present, so a rate() never starts from
	// a missing series.
	for _, d := range []record.Disposition{record.Counted, record.Repeat, record.Late, record.NoTicket} {
		counter(c.presses, s.Counters.Presses[d], string(d))
	}
	counter(c.writeFailures, s.Counters.WriteFailures)
	counter(c.published, s.Uplink.Published)
	counter(c.acked, s.Uplink.Acked)
	counter(c.connects, s.Uplink.Connects)
	counter(c.reconnects, max(s.Uplink.Connects-1, 0))
	gauge(c.pending, float64(s.Pending))
	gauge(c.oldest, s.OldestPending.Seconds())
	gauge(c.lastSeq, float64(s.LastSeq))
	if s.OutboxBytes >= 0 {
		gauge(c.outboxBytes, float64(s.OutboxBytes))
	}
	gauge(c.outboxFull, bit(s.OutboxFull))
	gauge(c.maxRecords, float64(s.MaxRecords))
	var stuck, stuckEvents, glitches int64
	if s.Input != nil {
		stuck, stuckEvents, glitches = int64(len(s.Input.Stuck)), s.Input.StuckEvents, s.Input.Glitches
	}
	gauge(c.stuck, float64(stuck))
	counter(c.stuckEvents, stuckEvents)
	counter(c.glitches, glitches)
	counter(c.ticketsApplied, s.Counters.TicketsApplied)
	counter(c.ticketsRejected, s.Counters.TicketsRejected)
	counter(c.drops, s.Uplink.TicketDropped)
	gauge(c.clockSynced, bit(s.ClockSynced))
}

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
