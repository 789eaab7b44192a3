package statushttp

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hallrate/hallrate/agent"
	"github.com/hallrate/hallrate/device"
	"github.com/hallrate/hallrate/record"
	"github.com/hallrate/hallrate/uplink"
)

type fixed agent.Snapshot

func (f *fixed) Snapshot() agent.Snapshot { return agent.Snapshot(*f) }

func snapshot() *fixed {
	return &fixed{
		Device: "w05-a", Hall: "h1", Counter: "W05", Version: "1.2.3",
		Health:    agent.Health{InputRunning: true, OutboxOK: true},
		Connected: true,
		Uplink:    uplink.Stats{Published: 7, Acked: 5, Connects: 3, TicketDropped: 1},
		Counters: agent.Counters{Presses: map[record.Disposition]int64{record.Counted: 4, record.Repeat: 3},
			WriteFailures: 1, TicketsApplied: 9, TicketsRejected: 2},
		Epoch: "9f2c41d7", Pending: 2, LastSeq: 7, MaxRecords: 100000, OutboxBytes: 32768,
		OldestPending: 1500 * time.Millisecond,
		Ticket:        &record.TicketRef{ID: "A023", State: record.Serving},
		ClockSynced:   true, BootID: "b", Uptime: time.Hour, At: time.Date(2026, 11, 24, 9, 15, 0, 0, time.UTC),
		Input: &device.Health{Stuck: []int{3}, StuckEvents: 1},
	}
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	snap := snapshot()
	srv := httptest.NewServer(Handler(snap))
	defer srv.Close()

	if code, body := get(t, srv, "/healthz"); code != 200 || !strings.HasPrefix(body, "ok") {
		t.Fatalf("healthz %d %q", code, body)
	}
	snap.Health = agent.Health{InputRunning: true, Problems: []string{"outbox: database not open"}}
	if code, body := get(t, srv, "/healthz"); code != 503 || !strings.Contains(body, "outbox: database not open") {
		t.Fatalf("healthz when unhealthy %d %q", code, body)
	}

	code, body := get(t, srv, "/metrics")
	if code != 200 {
		t.Fatalf("metrics %d", code)
	}
	for _, want := range []string{
		`hallrate_agent_presses_total{disposition="counted"} 4`,
		`hallrate_agent_presses_total{disposition="late"} 0`,
		"hallrate_agent_records_pending 2",
		"hallrate_agent_oldest_pending_age_seconds 1.5",
		"hallrate_agent_broker_reconnects_total 2",
		"hallrate_agent_outbox_size_bytes 32768",
		"hallrate_agent_buttons_stuck 1",
		"hallrate_agent_ticket_messages_rejected_total 2",
		"hallrate_agent_clock_synced 1",
		"hallrate_agent_outbox_full 0",
		"hallrate_agent_healthy 0",
		`hallrate_agent_info{counter="W05",device="w05-a",epoch="9f2c41d7",hall="h1",version="1.2.3"} 1`,
		"go_goroutines ",
	} {
		if !strings.Contains(body, want+"\n") && !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	code, body = get(t, srv, "/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("status %d %v %s", code, err, body)
	}
	if st.Healthy || st.Pending != 2 || st.LastSeq != 7 || st.Ticket.ID != "A023" || !st.Connected ||
		st.StuckButtons[0] != 3 || st.Presses[record.Counted] != 4 || st.OldestPendingSeconds != 1.5 {
		t.Fatalf("status %+v", st)
	}

	if code, _ := get(t, srv, "/nothing"); code != 404 {
		t.Fatalf("unknown path answered %d", code)
	}
}

func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(snapshot()))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}
