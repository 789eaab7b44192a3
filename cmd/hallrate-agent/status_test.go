package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/hallrate/hallrate/agent/statushttp"
	"github.com/hallrate/hallrate/config"
	"github.com/hallrate/hallrate/internal/cli"
	"github.com/hallrate/hallrate/record"
)

func TestBrokerPasswordNotInURL(t *testing.T) {
	cfg := config.Default()
	cfg.Device.ID = "w05-a"
	cfg.MQTT.Broker = "tcp://w05:s3cret@10.0.0.2:1883"
	uc, err := uplinkConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if uc.Broker != "tcp://10.0.0.2:1883" || uc.Username != "w05" || uc.Password != "s3cret" {
		t.Fatalf("broker %q user %q password %q", uc.Broker, uc.Username, uc.Password)
	}
	if got := redact(cfg.MQTT.Broker); strings.Contains(got, "s3cret") {
		t.Fatalf("redact left the password: %s", got)
	}
}

func TestStatusDisabledEndpoint(t *testing.T) {
	path := writeSimConfig(t) // no [http] section
	var out, errb bytes.Buffer
	err := program().Dispatch(context.Background(), []string{"status", "--config", path}, cli.IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	if err == nil || !strings.Contains(err.Error(), "status endpoint is disabled") || !strings.Contains(err.Error(), statushttp.DefaultListen) {
		t.Fatalf("status = %v", err)
	}
}

func TestPrintStatus(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, statushttp.Status{
		Device: "w05-a", Hall: "h1", Counter: "W05", Version: "1.0", Healthy: false,
		Problems: []string{"input driver not running"}, Pending: 3, OldestPendingSeconds: 75.2,
		OutboxFull: true, MaxRecords: 2, LastSeq: 9, Epoch: "e",
		Ticket: &record.TicketRef{ID: "A1", State: record.Done}, StuckButtons: []int{2},
		Unconfirmed: 5, Resent: 2, UnconfirmedDropped: 1, StoredRefused: true,
	})
	for _, want := range []string{"UNHEALTHY: input driver not running", "broker    NOT connected",
		"3 pending, oldest 1m15s, PAST ALARM THRESHOLD 2; last seq 9, epoch e", "ticket    A1 done",
		"clock     NOT synchronised", "STUCK: [2]",
		"stored    5 awaiting the hall's confirmation, 2 resent, 1 LEFT UNCONFIRMED, STORED TOPIC REFUSED BY THE BROKER (ACL)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9102": "127.0.0.1:9102", ":9102": "127.0.0.1:9102", "0.0.0.0:1": "127.0.0.1:1",
		"[::]:5": "127.0.0.1:5", "10.0.0.3:9102": "10.0.0.3:9102",
	} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}
