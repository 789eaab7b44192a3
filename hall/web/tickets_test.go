package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/live"
	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/tickets"
	"github.com/hallrate/hallrate/internal/testenv"
	"github.com/hallrate/hallrate/record"
)

// brokerLink stands for the collector's MQTT link: it records what it
// was asked to publish, or fails like a broker that is away.
type brokerLink struct {
	mu     sync.Mutex
	up     bool
	topics []string
	bodies []string
}

func (b *brokerLink) Publish(_ context.Context, topic string, payload []byte, retained bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.up {
		return errors.New("connection lost before the PUBACK")
	}
	if !retained {
		return errors.New("ticket published without retain")
	}
	b.topics = append(b.topics, topic)
	b.bodies = append(b.bodies, string(payload))
	return nil
}

func (b *brokerLink) ready() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.up
}

func ticketServer(t *testing.T, token string) (*brokerLink, *live.Hub, http.Handler) {
	t.Helper()
	db, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "c.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	bl := &brokerLink{up: true}
	hub := live.NewHub(nil)
	gw := tickets.NewGateway(tickets.Config{Prefix: "hallrate/v1", Hall: "h1", Publisher: bl, Ready: bl.ready, Noter: hub,
		Clock: testenv.ClockFunc(func() time.Time { return time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC) })})
	s := New(Config{Store: db, Hall: "h1", Location: time.UTC, Token: token, Tickets: gw, Hosts: []string{"example.com"}})
	if err := s.AddDashboard(t.Context(), hub); err != nil {
		t.Fatal(err)
	}
	return bl, hub, s.Handler()
}

func do(h http.Handler, method, path, remote, token, body string) (int, string) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = remote
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

const okTicket = `{"v":1,"ticket":"A031","state":"done","staff":"S017","item":"business licence","at":"2026-11-24T09:15:00+08:00"}`

func TestTicketRoutes(t *testing.T) {
	bl, hub, h := ticketServer(t, "")
	const local = "127.0.0.1:40000"
	code, body := do(h, "POST", "/api/v1/counters/W05/ticket", local, "", okTicket)
	if code != 200 {
		t.Fatalf("post ticket: %d %s", code, body)
	}
	if len(bl.topics) != 1 || bl.topics[0] != "hallrate/v1/h1/W05/ticket" || bl.bodies[0] != okTicket {
		t.Fatalf("published %q %q", bl.topics, bl.bodies)
	}
	for _, tc := range []struct{ body, field string }{
		{`not json`, "body"},
		{``, "body"},
		{`{"v":2,"ticket":"A1","state":"done"}`, "v"},
		{`{"v":1,"state":"done"}`, "ticket"},
		{`{"v":1,"ticket":"A1","state":"paused"}`, "state"},
		{`{"v":1,"ticket":42,"state":"serving"}`, "ticket"},
	} {
		code, body := do(h, "POST", "/api/v1/counters/W05/ticket", local, "", tc.body)
		var e apiError
		json.Unmarshal([]byte(body), &e)
		if code != 400 || e.Field != tc.field || e.Error == "" {
			t.Errorf("body %q: %d %s, want 400 naming %s", tc.body, code, body, tc.field)
		}
	}
	if code, body := do(h, "POST", "/api/v1/counters/W%2F05/ticket", local, "", okTicket); code != 400 || !strings.Contains(body, `"field": "counter"`) {
		t.Errorf("bad counter: %d %s", code, body)
	}
	if len(bl.topics) != 1 {
		t.Fatalf("a refused ticket was published: %q", bl.bodies)
	}
	// The broker hands the ticket back to the collector's subscription:
	// the counter lists it, with the door it came in by.
	tk, _ := record.DecodeTicket([]byte(okTicket))
	hub.SetTicket("h1", "W05", tk)
	_, body = do(h, "GET", "/api/v1/counters", local, "", "")
	var cs struct {
		Counters []counterView `json:"counters"`
	}
	if err := json.Unmarshal([]byte(body), &cs); err != nil || len(cs.Counters) != 1 {
		t.Fatalf("counters: %v %s", err, body)
	}
	if c := cs.Counters[0]; c.Counter != "W05" || c.Ticket == nil || c.Ticket.ID != "A031" || c.Ticket.Via != tickets.ViaHTTP ||
		c.Ticket.Source != record.SourceQueue || c.Ticket.ChangedAt == "" {
		t.Fatalf("counter %+v ticket %+v", c, c.Ticket)
	}
	// DELETE clears the counter.
	if code, body := do(h, "DELETE", "/api/v1/counters/W05/ticket", local, "", ""); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if last := bl.bodies[len(bl.bodies)-1]; last != `{"v":1,"state":"idle","at":"2026-11-24T09:00:00Z"}` {
		t.Fatalf("clear published %s", last)
	}
	// Broker away: 503 with the reason, nothing claimed.
	bl.mu.Lock()
	bl.up = false
	bl.mu.Unlock()
	code, body = do(h, "POST", "/api/v1/counters/W05/ticket", local, "", okTicket)
	if code != 503 || !strings.Contains(body, "not connected to the broker") {
		t.Fatalf("broker away: %d %s", code, body)
	}
	// From another address, without http.token_file: refused, not published.
	n := len(bl.bodies)
	bl.mu.Lock()
	bl.up = true
	bl.mu.Unlock()
	for _, m := range []string{"POST", "DELETE"} {
		if code, body := do(h, m, "/api/v1/counters/W05/ticket", "192.0.2.10:5555", "", okTicket); code != 403 {
			t.Errorf("%s from a non-loopback address: %d %s, want 403", m, code, body)
		}
	}
	if len(bl.bodies) != n {
		t.Fatal("a refused change was published")
	}
}

func TestTicketRoutesNeedTheToken(t *testing.T) {
	bl, _, h := ticketServer(t, testToken)
	for _, tok := range []string{"", "wrong"} {
		if code, body := do(h, "POST", "/api/v1/counters/W05/ticket", "192.0.2.10:5555", tok, okTicket); code != 401 {
			t.Errorf("token %q: %d %s, want 401", tok, code, body)
		}
	}
	if len(bl.bodies) != 0 {
		t.Fatal("published without the token")
	}
	if code, body := do(h, "POST", "/api/v1/counters/W05/ticket", "192.0.2.10:5555", testToken, okTicket); code != 200 {
		t.Fatalf("with the token: %d %s", code, body)
	}
}
