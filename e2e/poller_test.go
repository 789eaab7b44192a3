package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// TestTicketPollerRestart: the collector polls a queue system's
// PostgreSQL table; each row is published on its counter's ticket topic in
// order; rows added while the collector is stopped are published after its
// restart, and none before it is published again. (A kill -9 between the
// broker's PUBACK of a row and the commit of the cursor past it publishes
// that row once more after the restart: the same retained message, which
// the agent takes as the same episode.)
func TestTicketPollerRestart(t *testing.T) {
	_, qdsn, qdb := startPostgres(t)
	if _, err := qdb.Exec(`CREATE TABLE calls (id BIGSERIAL PRIMARY KEY, window_no TEXT NOT NULL, ticket_no TEXT NOT NULL,
		status TEXT NOT NULL, called_at TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	add := func(counter, ticket, state string) {
		t.Helper()
		if _, err := qdb.Exec(`INSERT INTO calls (window_no, ticket_no, status, called_at) VALUES ($1, $2, $3, $4)`,
			counter, ticket, state, time.Now().Format(time.RFC3339)); err != nil {
			t.Fatal(err)
		}
	}
	broker := mqtttest.StartMosquitto(t, "")
	sub := mqtttest.Subscribe(t, broker.URL(), "e2e-tickets", "hallrate/v1/h1/+/ticket")
	bin := buildCollector(t)
	dir := t.TempDir()
	conf, apiAddr := hallConf{ClientID: "collector-poller", Broker: broker.URL(), Esup: `sink = "table"`, More: fmt.Sprintf(`[tickets]
sql_driver = "postgres"
sql_dsn = %q
sql_query = "SELECT id AS cursor, window_no AS counter, ticket_no AS ticket, status AS state, called_at AS at FROM calls WHERE id > $1::bigint ORDER BY id"
poll_interval = "200ms"`, qdsn)}.write(t, dir)

	// tickets returns counter:ticket:state of every ticket message
	// published while the subscriber listened (a retained copy comes with
	// a subscription, and says nothing of what was published).
	live := func(msgs []mqtttest.Message) []mqtttest.Message {
		var out []mqtttest.Message
		for _, m := range msgs {
			if !m.Retained {
				out = append(out, m)
			}
		}
		return out
	}
	tickets := func(msgs []mqtttest.Message) []string {
		var out []string
		for _, m := range live(msgs) {
			tk, err := record.DecodeTicket(m.Payload)
			if err != nil {
				t.Fatalf("a published ticket the agent refuses: %v: %s", err, m.Payload)
			}
			out = append(out, strings.Split(m.Topic, "/")[3]+":"+tk.Ticket+":"+string(tk.State))
		}
		return out
	}
	atLeast := func(n int) func([]mqtttest.Message) bool {
		return func(m []mqtttest.Message) bool { return len(live(m)) >= n }
	}
	add("W05", "A001", "serving")
	add("W06", "B001", "serving")
	add("W05", "A001", "done")
	c := startCollectorBin(t, bin, conf)
	waitHTTP(t, "http://"+apiAddr+"/healthz", 200, c.String)
	sub.Wait(t, wait, "three tickets", atLeast(3))
	// A clean stop (SIGTERM, as systemd stops it).
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(wait):
		t.Fatalf("collector did not stop on SIGTERM:\n%s", c.String())
	}
	add("W06", "B001", "done")
	add("W05", "A002", "serving")
	c = startCollectorBin(t, bin, conf)
	waitHTTP(t, "http://"+apiAddr+"/healthz", 200, c.String)
	sub.Wait(t, wait, "five tickets", atLeast(5))
	// One more row: it follows, so every row before it was heard.
	add("W07", "C001", "done")
	msgs := sub.Wait(t, wait, "six tickets", atLeast(6))
	want := "[W05:A001:serving W06:B001:serving W05:A001:done W06:B001:done W05:A002:serving W07:C001:done]"
	if got := fmt.Sprint(tickets(msgs)); got != want {
		t.Fatalf("tickets published %s,\nwant in order, once each, %s\n%s", got, want, c.String())
	}
}
