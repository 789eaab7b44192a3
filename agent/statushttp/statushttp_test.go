package statushttp

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hallrate/hallrate/agent"
	"github.com/hallrate/hallrate/device"
	"github.com/hallrate/hallrate/record"
	"github.com/hallrate/hallrate/uplink"
	"github.com/hallrate/hallrate/voice"
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
		Voice: &voice.Stats{Played: 5, Failed: 1},
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

// seriesNames are every series the agent served with client_golang's
// registry, its own and the Go and process collectors' (dashboards and
// alerts are made of these names): each must still be served.
var seriesNames = strings.Fields(`
go_gc_duration_seconds go_gc_duration_seconds_count go_gc_duration_seconds_sum
go_gc_gogc_percent go_gc_gomemlimit_bytes go_goroutines go_info
go_memstats_alloc_bytes go_memstats_alloc_bytes_total go_memstats_buck_hash_sys_bytes
go_memstats_frees_total go_memstats_gc_sys_bytes go_memstats_heap_alloc_bytes
go_memstats_heap_idle_bytes go_memstats_heap_inuse_bytes go_memstats_heap_objects
go_memstats_heap_released_bytes go_memstats_heap_sys_bytes go_memstats_last_gc_time_seconds
go_memstats_mallocs_total go_memstats_mcache_inuse_bytes go_memstats_mcache_sys_bytes
go_memstats_mspan_inuse_bytes go_memstats_mspan_sys_bytes go_memstats_next_gc_bytes
go_memstats_other_sys_bytes go_memstats_stack_inuse_bytes go_memstats_stack_sys_bytes
go_memstats_sys_bytes go_sched_gomaxprocs_threads go_threads
hallrate_agent_broker_connected hallrate_agent_broker_connects_total
hallrate_agent_broker_reconnects_total hallrate_agent_button_glitches_total
hallrate_agent_button_stuck_events_total hallrate_agent_buttons_stuck
hallrate_agent_clock_synced hallrate_agent_healthy hallrate_agent_info
hallrate_agent_input_running hallrate_agent_last_seq hallrate_agent_oldest_pending_age_seconds
hallrate_agent_outbox_full hallrate_agent_outbox_max_records hallrate_agent_outbox_size_bytes
hallrate_agent_press_write_failures_total hallrate_agent_presses_total
hallrate_agent_reasons_total hallrate_agent_records_acked_total hallrate_agent_records_pending
hallrate_agent_records_published_total hallrate_agent_records_resent_total
hallrate_agent_records_unconfirmed hallrate_agent_records_unconfirmed_dropped_total
hallrate_agent_ticket_messages_applied_total
hallrate_agent_ticket_messages_dropped_total hallrate_agent_ticket_messages_rejected_total
hallrate_agent_voice_prompts_failed_total hallrate_agent_voice_prompts_played_total hallrate_agent_voice_working
process_cpu_seconds_total process_max_fds process_network_receive_bytes_total
process_network_transmit_bytes_total process_open_fds process_resident_memory_bytes
process_start_time_seconds process_virtual_memory_bytes process_virtual_memory_max_bytes
`)

// TestMetricNames parses /metrics with Prometheus's own text parser and
// checks that it serves exactly the series listed above, with their
// types, and that the linter Prometheus ships finds nothing to say.
func TestMetricNames(t *testing.T) {
	srv := httptest.NewServer(Handler(snapshot()))
	defer srv.Close()
	code, body := get(t, srv, "/metrics")
	if code != 200 {
		t.Fatalf("metrics %d", code)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("metrics are not Prometheus text: %v\n%s", err, body)
	}
	got := map[string]bool{}
	for name, f := range families {
		switch f.GetType().String() {
		case "SUMMARY":
			got[name+"_sum"], got[name+"_count"] = true, true
		case "GAUGE", "COUNTER":
		default:
			t.Errorf("%s: type %s", name, f.GetType())
		}
		if strings.HasSuffix(name, "_total") && f.GetType().String() != "COUNTER" {
			t.Errorf("%s is a %s", name, f.GetType())
		}
		got[name] = true
	}
	for _, name := range seriesNames {
		if !got[name] {
			t.Errorf("series %s is no longer served", name)
		}
		delete(got, name)
	}
	for name := range got {
		t.Errorf("series %s is served but not listed here", name)
	}
	if n := len(families["hallrate_agent_presses_total"].GetMetric()); n != 4 {
		t.Errorf("presses_total has %d dispositions, want 4", n)
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

func TestEscapeLabel(t *testing.T) {
	var b strings.Builder
	bw := bufio.NewWriter(&b)
	expo{bw}.one(mInfo, 1, "counter", "a\\b\"c\nd", "device", "窗口")
	bw.Flush()
	want := `hallrate_agent_info{counter="a\\b\"c\nd",device="窗口"} 1` + "\n"
	if !strings.HasSuffix(b.String(), want) {
		t.Fatalf("got %q, want suffix %q", b.String(), want)
	}
}
