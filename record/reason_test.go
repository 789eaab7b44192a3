package record

import (
	"encoding/json"
	"strings"
	"testing"
)

func reasonRecord() Press {
	return Press{
		V: 1, Kind: KindReason, ID: PressID("w05-a", "9f2c41d7", 43), Device: "w05-a", Hall: "h1", Counter: "W05",
		Epoch: "9f2c41d7", Seq: 43, Button: 2, For: "w05-a:9f2c41d7:42",
		Reason:    &ReasonRef{Code: "speed", Label: "办事效率"},
		Ticket:    &TicketRef{ID: "A023", State: Done, Staff: "S017"},
		PressedAt: "2026-11-24T09:15:05.000+08:00", ClockSynced: true, BootID: "b", UptimeMS: 2,
	}
}

func TestReasonRecord(t *testing.T) {
	b, err := json.Marshal(reasonRecord())
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{`"button":2,"label"`, `"satisfaction"`, `"disposition"`} {
		if strings.Contains(string(b), absent) {
			t.Errorf("a reason record carries %s: %s", absent, b)
		}
	}
	got, err := DecodePress(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.IsReason() || got.For != "w05-a:9f2c41d7:42" || got.Reason == nil || got.Reason.Code != "speed" || got.Reason.Label != "办事效率" {
		t.Fatalf("%+v", got)
	}
	bad := map[string]func(p *Press){
		"unknown kind":         func(p *Press) { p.Kind = "comment" },
		"for missing":          func(p *Press) { p.For = "" },
		"for other device":     func(p *Press) { p.For = "w06-a:9f2c41d7:42" },
		"for other epoch":      func(p *Press) { p.For = "w05-a:00000000:42" },
		"for itself":           func(p *Press) { p.For = p.ID },
		"for later":            func(p *Press) { p.For = "w05-a:9f2c41d7:44" },
		"for garbage":          func(p *Press) { p.For = "w05-a:9f2c41d7:x" },
		"for leading zero":     func(p *Press) { p.For = "w05-a:9f2c41d7:042" },
		"reason missing":       func(p *Press) { p.Reason = nil },
		"code missing":         func(p *Press) { p.Reason.Code = "" },
		"code charset":         func(p *Press) { p.Reason.Code = "速度" },
		"label missing":        func(p *Press) { p.Reason.Label = "" },
		"label control":        func(p *Press) { p.Reason.Label = "a\nb" },
		"label bidi":           func(p *Press) { p.Reason.Label = "a\u202eb" },
		"label too long":       func(p *Press) { p.Reason.Label = strings.Repeat("长", MaxNameText/3+1) },
		"with label":           func(p *Press) { p.Label = "satisfied" },
		"with disposition":     func(p *Press) { p.Disposition = Counted },
		"with satisfaction":    func(p *Press) { p.Satisfaction = 2 },
		"button zero":          func(p *Press) { p.Button = 0 },
		"rating with reason":   func(p *Press) { p.Kind, p.Disposition, p.Satisfaction, p.Label = KindRating, Counted, 2, "x" },
		"unmarked with reason": func(p *Press) { p.Kind, p.Disposition, p.Satisfaction, p.Label = "", Counted, 2, "x" },
	}
	for name, change := range bad {
		p := reasonRecord()
		change(&p)
		b, _ := json.Marshal(p)
		if _, err := DecodePress(b); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: multi-line error", name)
		}
	}
	if err := CheckReasonLabel("\xff"); err == nil {
		t.Error("invalid UTF-8 accepted as a label")
	}
	if p := reasonRecord(); true {
		p.Reason.Label = strings.Repeat("长", MaxNameText/3)
		b, _ := json.Marshal(p)
		if _, err := DecodePress(b); err != nil {
			t.Errorf("label of %d characters: %v", MaxNameText/3, err)
		}
	}
}

// A rating may say "kind":"rating"; without it, it is a rating as before,
// and its payload is byte for byte what it always was.
func TestRatingKind(t *testing.T) {
	old := `{"v":1,"id":"w05-a:9f2c41d7:42","device":"w05-a","hall":"h1","counter":"W05","epoch":"9f2c41d7","seq":42,"button":1,"label":"very_satisfied","satisfaction":5,"disposition":"counted","ticket":{"id":"A023","state":"done"},"pressed_at":"2026-11-24T09:15:03.123+08:00","clock_synced":true,"boot_id":"b","uptime_ms":1,"prev":""}`
	p, err := DecodePress([]byte(old))
	if err != nil || p.IsReason() {
		t.Fatalf("%+v %v", p, err)
	}
	again, _ := json.Marshal(p)
	if string(again) != old {
		t.Fatalf("a rating re-encodes differently:\n%s\n%s", again, old)
	}
	marked := strings.Replace(old, `{"v":1,`, `{"v":1,"kind":"rating",`, 1)
	if p, err := DecodePress([]byte(marked)); err != nil || p.IsReason() || p.Kind != KindRating {
		t.Fatalf("%+v %v", p, err)
	}
}
