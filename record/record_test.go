package record

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeTicket(t *testing.T) {
	good := `{"v":1,"ticket":"A023","state":"serving","staff":"S017","item":"business licence","at":"2026-11-24T09:15:00+08:00","extra":{"x":1}}`
	tk, err := DecodeTicket([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if tk.Ticket != "A023" || tk.State != Serving || tk.Staff != "S017" {
		t.Fatalf("%+v", tk)
	}
	if _, err := DecodeTicket([]byte(`{"v":1,"state":"idle"}`)); err != nil {
		t.Fatalf("idle without ticket: %v", err)
	}
	withNo, err := DecodeTicket([]byte(`{"v":1,"ticket":"A1","state":"done","projectNo":"620100-2026-000123"}`))
	if err != nil || withNo.ProjectNo != "620100-2026-000123" {
		t.Fatalf("projectNo: %+v %v", withNo, err)
	}
	bad := map[string]string{
		"not json":      `hello`,
		"array":         `[1,2]`,
		"no v":          `{"ticket":"A1","state":"serving"}`,
		"v2":            `{"v":2,"ticket":"A1","state":"serving"}`,
		"v string":      `{"v":"1","ticket":"A1","state":"serving"}`,
		"ticket number": `{"v":1,"ticket":23,"state":"serving"}`,
		"serving no id": `{"v":1,"state":"serving"}`,
		"done empty id": `{"v":1,"ticket":"","state":"done"}`,
		"unknown state": `{"v":1,"ticket":"A1","state":"paused"}`,
		"staff wrong":   `{"v":1,"ticket":"A1","state":"serving","staff":{"id":1}}`,
		"trailing":      `{"v":1,"state":"idle"} {"v":1}`,
		"huge":          `{"v":1,"ticket":"A1","state":"serving","item":"` + strings.Repeat("x", MaxTicketPayload) + `"}`,
		"null":          `null`,
	}
	for name, p := range bad {
		if _, err := DecodeTicket([]byte(p)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: multi-line error", name)
		}
	}
}

// TestDecodeTicketStrictly: a zero-length message clears like idle; at is
// RFC 3339 with an offset; each rejection names the field and what is
// wrong, in one line, with no Go type name.
func TestDecodeTicketStrictly(t *testing.T) {
	if tk, err := DecodeTicket(nil); err != nil || tk.State != Idle || tk.Ticket != "" {
		t.Fatalf("zero-length message: %+v %v", tk, err)
	}
	if _, err := DecodeTicket([]byte(`{"v":1,"ticket":"A1","state":"done","at":"2026-11-24T01:15:00Z"}`)); err != nil {
		t.Fatalf("at in UTC: %v", err)
	}
	for in, want := range map[string]string{
		`{"v":1,"ticket":"A1","state":"done","at":"yesterday"}`:           `ticket: at: "yesterday" is not RFC 3339 with an offset`,
		`{"v":1,"ticket":"A1","state":"done","at":"2026-11-24T09:15:00"}`: `ticket: at: "2026-11-24T09:15:00" is not RFC 3339 with an offset`,
		`{"v":1,"ticket":"A1","state":"done","at":"2026-11-24"}`:          `ticket: at: "2026-11-24" is not RFC 3339`,
		`{"v":1,"ticket":"A1","state":"done","at":1795914903}`:            `ticket: at: not a string but a number`,
		`[1,2]`:                    `ticket: not a JSON object but an array`,
		`"A1"`:                     `ticket: not a JSON object but a string`,
		`null`:                     `ticket: not a JSON object but null`,
		`{"v":"1","state":"idle"}`: `ticket: v: not an integer but a string`,
		`{"v":1.5,"state":"idle"}`: `ticket: v: not an integer but a number`,
		`{"v":1,"ticket":["A1"],"state":"serving"}`:                `ticket: ticket: not a string but an array`,
		`{"v":1,"ticket":"A1","state":"serving","staff":{"id":1}}`: `ticket: staff: not a string but an object`,
		`{"v":1,"ticket":"A1","state":true}`:                       `ticket: state: not a string but true`,
		`{"v":1,"ticket":"A1"}`:                                    `ticket: state: missing`,
		`{"v":1,"ticket":"A1","state":"paused"}`:                   `ticket: state: "paused" is not serving, done or idle`,
		`{"v":1,"state":"serving"}`:                                `ticket: ticket: missing for state "serving"`,
		`{"v":1,`:                                                  `ticket: not JSON`,
	} {
		_, err := DecodeTicket([]byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s…", in, err, want)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || strings.Contains(msg, "Go ") || strings.Contains(msg, "struct") ||
			strings.Contains(msg, "map[") || strings.Contains(msg, "int") && !strings.Contains(msg, "integer") {
			t.Errorf("%s: %q is not one plain line", in, msg)
		}
	}
}

func TestPressRoundTrip(t *testing.T) {
	p := Press{
		V: 1, ID: PressID("w05-a", "9f2c41d7", 42), Device: "w05-a", Hall: "h1", Counter: "W05",
		Epoch: "9f2c41d7", Seq: 42, Button: 1, Label: "very_satisfied", Satisfaction: 5,
		Disposition: Counted, Ticket: &TicketRef{ID: "A023", State: Done, Staff: "S017"},
		PressedAt: "2026-11-24T09:15:03.123+08:00", ClockSynced: true, BootID: "b", UptimeMS: 1,
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePress(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "w05-a:9f2c41d7:42" || got.Ticket.ID != "A023" {
		t.Fatalf("%+v", got)
	}
	// no_ticket carries "ticket": null, not an omitted field.
	p.Disposition, p.Ticket = NoTicket, nil
	b, _ = json.Marshal(p)
	if !strings.Contains(string(b), `"ticket":null`) {
		t.Fatalf("no_ticket payload %s", b)
	}
	p.ID = "w05-a:9f2c41d7:43"
	b, _ = json.Marshal(p)
	if _, err := DecodePress(b); err == nil {
		t.Fatal("id not matching seq accepted")
	}
}

func FuzzDecodeTicket(f *testing.F) {
	f.Add([]byte(`{"v":1,"ticket":"A023","state":"serving","staff":"S017"}`))
	f.Add([]byte(`{"v":1,"state":"idle"}`))
	f.Add([]byte(`{"v":1,"ticket":"A1","state":"done","projectNo":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := DecodeTicket(data)
		if err != nil {
			return
		}
		if tk.V != 1 || (tk.State != Idle && tk.Ticket == "") {
			t.Fatalf("accepted an invalid ticket: %+v", tk)
		}
	})
}
