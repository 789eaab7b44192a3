package collector

import (
	"github.com/hallrate/hallrate/hall/ingest"
	"github.com/hallrate/hallrate/hall/link"
	"github.com/hallrate/hallrate/hall/live"
	"github.com/hallrate/hallrate/record"
)

// ticketFilter is the plain subscription to the hall's ticket topics. The
// collector only shows tickets on the dashboard: they never reach the
// store, and the agents bind presses to tickets themselves.
func ticketFilter(prefix, hall string) string { return prefix + "/" + hall + "/+/ticket" }

// splitTickets hands the ticket messages among msgs to the hub and returns
// the others, for the ingester. A ticket message that does not decode is
// dropped: it is the queue system's, and the agents report it.
func splitTickets(msgs []link.Message, prefix string, hub *live.Hub) []link.Message {
	rest := msgs[:0:0]
	for _, m := range msgs {
		t, err := ingest.ParseTopic(prefix, m.Topic)
		if err != nil || t.Kind != "ticket" {
			rest = append(rest, m)
			continue
		}
		if tk, err := record.DecodeTicket(m.Payload); err == nil {
			hub.SetTicket(t.Hall, t.Counter, tk)
		}
	}
	return rest
}
