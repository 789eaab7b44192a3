package record

import (
	"encoding/json"
	"strings"
	"testing"
)

// goodPress is a record every rule accepts; tests break one field of it.
const goodPress = `{"v":1,"id":"w05-a:9f2c41d7:42","device":"w05-a","hall":"h1","counter":"W05","epoch":"9f2c41d7",` +
	`"seq":42,"button":1,"label":"very_satisfied","satisfaction":5,"disposition":"counted",` +
	`"ticket":{"id":"A023","state":"done","staff":"S017","item":"营业执照 business\tlicence"},` +
	`"pressed_at":"2026-11-24T09:15:03.123+08:00","clock_synced":true,"boot_id":"b","uptime_ms":1,"prev":""}`

func TestDecodePressRules(t *testing.T) {
	// The tab in the good item must go: no wire field holds a tab.
	good := strings.Replace(goodPress, `\t`, " ", 1)
	if _, err := DecodePress([]byte(good)); err != nil {
		t.Fatalf("good record refused: %v", err)
	}
	bad := map[string]struct{ from, to, field string }{
		"NUL in staff":          {`"S017"`, `"a\u0000b"`, "ticket.staff"},
		"tab in staff":          {`"S017"`, `"a\tb"`, "ticket.staff"},
		"newline in item":       {`"营业执照 business licence"`, `"x\ny"`, "ticket.item"},
		"C1 in label":           {`"very_satisfied"`, `"very\u0085"`, "label"},
		"RLO in staff":          {`"S017"`, `"S\u202e710"`, "ticket.staff"},
		"line separator":        {`"S017"`, `"S\u2028"`, "ticket.staff"},
		"BOM in boot_id":        {`"boot_id":"b"`, `"boot_id":"\ufeffb"`, "boot_id"},
		"1 MB staff":            {`"S017"`, `"` + strings.Repeat("x", 1<<20) + `"`, "message"},
		"65-byte staff":         {`"S017"`, `"` + strings.Repeat("x", 65) + `"`, "ticket.staff"},
		"513-byte item":         {`"营业执照 business licence"`, `"` + strings.Repeat("x", 513) + `"`, "ticket.item"},
		"long unknown field":    {`"prev":""`, `"prev":"","note":"` + strings.Repeat("办", 200) + `"`, "note"},
		"NUL in unknown field":  {`"prev":""`, `"prev":"","x":["ok","a\u0000"]`, "x"},
		"NUL in a key":          {`"prev":""`, `"prev":"","a\u0000":1`, "key"},
		"button 3000000000":     {`"button":1`, `"button":3000000000`, "button"},
		"button 7":              {`"button":1`, `"button":7`, "button"},
		"button 0":              {`"button":1`, `"button":0`, "button"},
		"satisfaction 6":        {`"satisfaction":5`, `"satisfaction":6`, "satisfaction"},
		"seq above int64":       {`"seq":42`, `"seq":9223372036854775808`, "seq"},
		"negative uptime":       {`"uptime_ms":1`, `"uptime_ms":-1`, "uptime_ms"},
		"invalid UTF-8 in item": {`"营业执照 business licence"`, "\"\xff\xfe\"", "message"},
	}
	for name, c := range bad {
		payload := strings.Replace(good, c.from, c.to, 1)
		if payload == good {
			t.Fatalf("%s: %q not in the record", name, c.from)
		}
		if c.field == "seq" {
			// The id must follow seq, or the id check answers first.
			payload = strings.Replace(payload, ":42\"", ":9223372036854775808\"", 1)
		}
		_, err := DecodePress([]byte(payload))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "\n") || len(err.Error()) > 200 {
			t.Errorf("%s: error not one short line: %q", name, err)
		}
		if c.field != "seq" && !IsRule(err) {
			t.Errorf("%s: %v is not a RuleError", name, err)
		}
		if !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("%s: error %q does not name %s", name, err, c.field)
		}
	}
}

func TestDecodeStatusRules(t *testing.T) {
	good := `{"v":1,"online":true,"device":"w05-a","version":"1.0","boot_id":"b","epoch":"e1","pending":0,"last_seq":42,"at":"2026-11-24T09:15:03+08:00"}`
	if _, err := DecodeStatus([]byte(good)); err != nil {
		t.Fatalf("good status refused: %v", err)
	}
	for name, c := range map[string][2]string{
		"NUL in version":  {`"1.0"`, `"1.0\u0000"`},
		"invalid UTF-8":   {`"1.0"`, "\"1.0\xc3\""},
		"last_seq":        {`"last_seq":42`, `"last_seq":18446744073709551615`},
		"pending":         {`"pending":0`, `"pending":-1`},
		"device":          {`"w05-a"`, `"w05 a"`},
		"long boot id":    {`"boot_id":"b"`, `"boot_id":"` + strings.Repeat("b", 65) + `"`},
		"huge status":     {`"at"`, `"x":"` + strings.Repeat(" ", MaxRecordPayload) + `","at"`},
		"version as list": {`"1.0"`, `["1.0"]`},
	} {
		payload := strings.Replace(good, c[0], c[1], 1)
		if _, err := DecodeStatus([]byte(payload)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDecodeTicketRules(t *testing.T) {
	for name, p := range map[string]string{
		"NUL in staff":   `{"v":1,"ticket":"A1","state":"serving","staff":"S\u0000017"}`,
		"newline":        `{"v":1,"ticket":"A1\nforged log line","state":"serving"}`,
		"RLO in item":    `{"v":1,"ticket":"A1","state":"serving","item":"\u202egnp.exe"}`,
		"invalid UTF-8":  "{\"v\":1,\"ticket\":\"A\xff\",\"state\":\"serving\"}",
		"long ticket id": `{"v":1,"ticket":"` + strings.Repeat("A", 65) + `","state":"serving"}`,
	} {
		_, err := DecodeTicket([]byte(p))
		if err == nil || !IsRule(err) {
			t.Errorf("%s: %v, want a rule error", name, err)
		}
	}
	if _, err := DecodeTicket([]byte(`{"v":1,"ticket":"A1","state":"serving","staff":"张三","item":"营业执照"}`)); err != nil {
		t.Errorf("Chinese text refused: %v", err)
	}
}

func TestCheckText(t *testing.T) {
	if err := CheckNote("note", "called back\tok", 64); err != nil {
		t.Errorf("tab in a note: %v", err)
	}
	if err := CheckText("staff", "a\tb", 64); err == nil {
		t.Error("tab in a field without tabs accepted")
	}
	if err := CheckText("staff", "张三", 6); err != nil {
		t.Errorf("6 bytes within 6: %v", err)
	}
	if err := CheckText("staff", "张三", 5); err == nil {
		t.Error("6 bytes within 5 accepted")
	}
	if err := CheckText("staff", "a\xffb", 64); err == nil || !strings.Contains(err.Error(), "UTF-8 at byte 1") {
		t.Errorf("invalid UTF-8: %v", err)
	}
	// U+FFFD itself is a character like any other.
	if err := CheckText("staff", "a\uFFFDb", 64); err != nil {
		t.Errorf("U+FFFD: %v", err)
	}
}

// A record the rules accept encodes back to one a store can hold: every
// string valid UTF-8 without NUL, every number in its column.
func FuzzDecodePress(f *testing.F) {
	f.Add([]byte(strings.Replace(goodPress, `\t`, " ", 1)))
	f.Add([]byte(strings.Replace(goodPress, `"S017"`, `"a\u0000b"`, 1)))
	f.Add([]byte(`{"v":1,"id":"d:e:1","device":"d","hall":"h","counter":"c","epoch":"e","seq":1,"button":3000000000,"satisfaction":1,"disposition":"no_ticket","ticket":null,"pressed_at":"2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePress(data)
		if err != nil {
			return
		}
		checkAccepted(t, p)
	})
}

func checkAccepted(t *testing.T, p Press) {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("accepted record does not encode: %v", err)
	}
	if strings.Contains(string(b), `\u0000`) {
		t.Fatalf("accepted record holds NUL: %s", b)
	}
	if p.Button < MinButton || p.Button > MaxButton || p.Seq > MaxSeq || p.Seq == 0 ||
		p.Satisfaction < MinSatisfaction || p.Satisfaction > MaxSatisfaction {
		t.Fatalf("accepted record out of range: %+v", p)
	}
	fields := []string{p.ID, p.Device, p.Hall, p.Counter, p.Epoch, p.Label, p.PressedAt, p.BootID, p.Prev, p.Sig}
	if p.Ticket != nil {
		fields = append(fields, p.Ticket.ID, p.Ticket.Staff, p.Ticket.Item, p.Ticket.ProjectNo)
	}
	for _, s := range fields {
		if err := CheckText("field", s, MaxLongText); err != nil {
			t.Fatalf("accepted record breaks the rules: %v", err)
		}
	}
}

// FuzzDecodeStatus checks that an accepted status breaks no rule.
func FuzzDecodeStatus(f *testing.F) {
	f.Add([]byte(`{"v":1,"online":true,"device":"w05-a","version":"1.0","boot_id":"b","epoch":"e1","pending":0,"last_seq":42}`))
	f.Add([]byte(`{"v":1,"online":false,"device":"w05-a","version":"1.0\u0000"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeStatus(data)
		if err != nil {
			return
		}
		for _, v := range []string{s.Device, s.Version, s.BootID, s.Epoch, s.PubKey, s.At} {
			if err := CheckText("field", v, MaxShortText); err != nil {
				t.Fatalf("accepted status breaks the rules: %v", err)
			}
		}
		if (s.Pending != nil && *s.Pending < 0) || (s.LastSeq != nil && *s.LastSeq > MaxSeq) {
			t.Fatalf("accepted status out of range: %+v", s)
		}
	})
}
