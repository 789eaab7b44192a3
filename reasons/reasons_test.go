package reasons

import (
	"testing"
	"time"

	"github.com/hallrate/hallrate/record"
)

func TestAsker(t *testing.T) {
	var up time.Duration
	a := New(Config{
		After: []int{1, 2}, Window: 10 * time.Second,
		Choices: []Choice{{"attitude", "服务态度"}, {"speed", "办事效率"}, {"other", "其他"}},
	}, func() time.Duration { return up })
	tk := &record.TicketRef{ID: "A1", State: record.Done}

	if a.Rated("d:e:1", record.Counted, 4, tk) || a.Asking() {
		t.Fatal("a 满意 asks")
	}
	if a.Rated("d:e:2", record.Repeat, 2, tk) || a.Asking() {
		t.Fatal("a repeat 不满意 asks")
	}
	if !a.Rated("d:e:3", record.Counted, 2, tk) || !a.Asking() {
		t.Fatal("a counted 不满意 does not ask")
	}
	up += 10 * time.Second
	r, ok := a.Reason(2)
	if !ok || r.For != "d:e:3" || r.Code != "speed" || r.Label != "办事效率" || r.Ticket != tk {
		t.Fatalf("press at the end of the window: %+v %v", r, ok)
	}
	if _, ok := a.Reason(4); ok {
		t.Fatal("a button without a reason gave one")
	}
	if !a.Asking() {
		t.Fatal("asking ended without End")
	}
	a.End()
	if _, ok := a.Reason(1); ok || a.Asking() {
		t.Fatal("asking after End")
	}

	// Past the window, the press is a rating press again.
	a.Rated("d:e:4", record.Counted, 1, tk)
	up += 10*time.Second + time.Millisecond
	if _, ok := a.Reason(1); ok || a.Asking() {
		t.Fatal("a press after the window gave a reason")
	}

	// Another rating ends asking.
	a.Rated("d:e:5", record.Counted, 1, tk)
	a.Rated("d:e:6", record.NoTicket, 5, nil)
	if a.Asking() {
		t.Fatal("a later rating left asking on")
	}
}

func TestOff(t *testing.T) {
	a := New(Config{After: nil, Window: time.Second, Choices: []Choice{{"a", "A"}}}, func() time.Duration { return 0 })
	if a.Rated("d:e:1", record.Counted, 1, nil) || a.Asking() {
		t.Fatal("after = [] asks")
	}
	a = New(Config{After: []int{1}, Window: time.Second}, func() time.Duration { return 0 })
	if a.Rated("d:e:1", record.Counted, 1, nil) {
		t.Fatal("no choices asks")
	}
}
