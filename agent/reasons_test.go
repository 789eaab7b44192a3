package agent

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hallrate/hallrate/buffer"
	"github.com/hallrate/hallrate/device"
	"github.com/hallrate/hallrate/reasons"
	"github.com/hallrate/hallrate/record"
	"github.com/hallrate/hallrate/sysclock"
	"github.com/hallrate/hallrate/uplink"
	"github.com/hallrate/hallrate/voice"
)

// said records the prompts spoken.
type said struct {
	mu      sync.Mutex
	prompts []voice.Prompt
}

func (s *said) Say(p voice.Prompt) {
	s.mu.Lock()
	s.prompts = append(s.prompts, p)
	s.mu.Unlock()
}

func (s *said) list() []voice.Prompt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.prompts)
}

// asking records AskReason calls on top of events.
type asking struct {
	*events
	mu sync.Mutex
	on []bool
}

func (a *asking) AskReason(on bool) {
	a.mu.Lock()
	a.on = append(a.on, on)
	a.mu.Unlock()
}

type reasonRig struct {
	a     *Agent
	out   *buffer.Memory
	clock *sysclock.Fake
	fb    *asking
	voice *said
}

func newReasonRig(t *testing.T) *reasonRig {
	t.Helper()
	o, _ := buffer.NewMemory()
	r := &reasonRig{out: o, clock: sysclock.NewFake(time.Now(), "boot"), fb: &asking{events: newEvents()}, voice: &said{}}
	a, err := New(Config{
		Device: "w05-a", Hall: "h1", Counter: "W05", Version: "test", Buttons: buttons,
		RatingWindow: 30 * time.Second, MaxRecords: 100,
		Reasons: reasons.Config{After: []int{1, 2}, Window: 10 * time.Second, Choices: []reasons.Choice{
			{Code: "attitude", Label: "服务态度"}, {Code: "speed", Label: "办事效率"}, {Code: "process", Label: "办事流程与材料"},
		}},
		Uplink: uplink.Config{Broker: "tcp://127.0.0.1:1", ClientID: "t", Topics: uplink.CounterTopics("p", "h1", "W05")},
	}, Parts{Outbox: o, Source: make(chanSource), Feedback: r.fb, Clock: r.clock, Voice: r.voice})
	if err != nil {
		t.Fatal(err)
	}
	r.a = a
	return r
}

func (r *reasonRig) ticket(id string, st record.TicketState) {
	b, _ := json.Marshal(record.Ticket{V: 1, Ticket: id, State: st, Staff: "S1"})
	r.a.applyTicket(b)
}

func (r *reasonRig) records(t *testing.T) []record.Press {
	t.Helper()
	es, err := r.out.Pending(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ps []record.Press
	for _, e := range es {
		p, err := record.DecodePress(e.Data)
		if err != nil {
			t.Fatalf("seq %d: %v", e.Seq, err)
		}
		ps = append(ps, p)
	}
	return ps
}

// The main loop's calls are made directly: the test is the loop.
func TestReasonAfterBadRating(t *testing.T) {
	r := newReasonRig(t)
	r.ticket("A1", record.Done)
	r.a.updateWindow()
	r.a.press(device.Press{Button: 1, At: time.Now()}) // 非常满意: no asking
	r.ticket("A2", record.Serving)
	r.ticket("A2", record.Done)
	r.a.press(device.Press{Button: 4, At: time.Now()}) // 不满意 (2): asks
	if !r.a.asking {
		t.Fatal("not asking after a counted 不满意")
	}
	r.clock.Advance(9 * time.Second)
	r.a.updateWindow()
	r.a.press(device.Press{Button: 2, At: time.Now()}) // the reason
	r.a.press(device.Press{Button: 3, At: time.Now()}) // a rating press again: repeat
	ps := r.records(t)
	if len(ps) != 4 {
		t.Fatalf("%d records", len(ps))
	}
	if ps[0].Disposition != record.Counted || ps[0].IsReason() || ps[1].Disposition != record.Counted || ps[1].Satisfaction != 2 {
		t.Fatalf("ratings: %+v %+v", ps[0], ps[1])
	}
	rs := ps[2]
	if !rs.IsReason() || rs.For != ps[1].ID || rs.Reason == nil || rs.Reason.Code != "speed" || rs.Reason.Label != "办事效率" || rs.Button != 2 ||
		rs.Ticket == nil || rs.Ticket.ID != "A2" || rs.Disposition != "" || rs.Prev != ps[1].ChainHash() {
		t.Fatalf("reason record: %+v", rs)
	}
	if ps[3].Disposition != record.Repeat || ps[3].IsReason() {
		t.Fatalf("press after the reason: %+v", ps[3])
	}
	want := []voice.Prompt{voice.Invite, voice.Thanks, voice.Invite, voice.Reason, voice.Thanks, voice.Already}
	if got := r.voice.list(); !slices.Equal(got, want) {
		t.Fatalf("prompts %v, want %v", got, want)
	}
	if !slices.Equal(r.fb.on, []bool{true, false}) {
		t.Fatalf("LEDs asked %v", r.fb.on)
	}
	if c := r.a.Counters(); c.Reasons != 1 || c.Presses[record.Counted] != 2 || c.Presses[record.Repeat] != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestReasonWindowPasses(t *testing.T) {
	r := newReasonRig(t)
	r.ticket("A1", record.Done)
	r.a.press(device.Press{Button: 4, At: time.Now()})
	r.clock.Advance(10*time.Second + time.Millisecond)
	r.a.updateWindow()
	if r.a.asking {
		t.Fatal("still asking after the window")
	}
	r.a.press(device.Press{Button: 2, At: time.Now()})
	ps := r.records(t)
	if len(ps) != 2 || ps[1].IsReason() || ps[1].Disposition != record.Repeat {
		t.Fatalf("press after the window: %+v", ps)
	}
}

func TestNewTicketEndsAsking(t *testing.T) {
	r := newReasonRig(t)
	r.ticket("A1", record.Done)
	r.a.press(device.Press{Button: 4, At: time.Now()})
	r.ticket("A1", record.Done) // the same ticket again changes nothing
	if !r.a.asking {
		t.Fatal("a repeated ticket message ended asking")
	}
	r.ticket("A2", record.Serving)
	if r.a.asking {
		t.Fatal("a new ticket left asking on")
	}
	r.a.press(device.Press{Button: 2, At: time.Now()})
	ps := r.records(t)
	if len(ps) != 2 || ps[1].IsReason() || ps[1].Disposition != record.Counted || ps[1].Ticket.ID != "A2" {
		t.Fatalf("press after a new ticket: %+v", ps)
	}
}

// The staff key brings the next citizen: it ends asking too.
func TestStaffKeyEndsAsking(t *testing.T) {
	r := newReasonRig(t)
	r.a.staffKey()
	r.a.press(device.Press{Button: 4, At: time.Now()})
	if !r.a.asking {
		t.Fatal("a counted 不满意 on a staff-key ticket does not ask")
	}
	r.a.staffKey()
	if r.a.asking {
		t.Fatal("the staff key left asking on")
	}
	r.a.press(device.Press{Button: 2, At: time.Now()})
	ps := r.records(t)
	if len(ps) != 2 || ps[1].IsReason() || ps[1].Disposition != record.Counted || ps[1].Ticket.ID == ps[0].Ticket.ID {
		t.Fatalf("press after the staff key: %+v", ps)
	}
}

// A reason that cannot be written is shown as an error and asking goes on,
// so the citizen may press again.
func TestReasonWriteFailure(t *testing.T) {
	r := newReasonRig(t)
	r.ticket("A1", record.Done)
	r.a.press(device.Press{Button: 4, At: time.Now()})
	r.a.outbox = failing{r.out}
	r.a.press(device.Press{Button: 1, At: time.Now()})
	if !r.a.asking {
		t.Fatal("a failed reason ended asking")
	}
	r.a.outbox = r.out
	r.a.press(device.Press{Button: 1, At: time.Now()})
	ps := r.records(t)
	if len(ps) != 2 || !ps[1].IsReason() || ps[1].Reason.Code != "attitude" {
		t.Fatalf("%+v", ps)
	}
	want := []voice.Prompt{voice.Invite, voice.Reason, voice.Error, voice.Thanks}
	if got := r.voice.list(); !slices.Equal(got, want) {
		t.Fatalf("prompts %v, want %v", got, want)
	}
}

// A button without a reason is a rating press while asking, and ends it.
func TestButtonWithoutReason(t *testing.T) {
	r := newReasonRig(t)
	r.ticket("A1", record.Done)
	r.a.press(device.Press{Button: 4, At: time.Now()})
	r.a.press(device.Press{Button: 4, At: time.Now()})
	r.a.press(device.Press{Button: 1, At: time.Now()})
	ps := r.records(t)
	if len(ps) != 3 || ps[1].IsReason() || ps[1].Disposition != record.Repeat || ps[2].IsReason() {
		t.Fatalf("%+v", ps)
	}
	if r.a.asking {
		t.Fatal("still asking")
	}
}
