package binding

import (
	"testing"
	"time"

	"github.com/hallrate/hallrate/record"
	"github.com/hallrate/hallrate/sysclock"
)

const window = 30 * time.Second

func newClock() *sysclock.Fake {
	return sysclock.NewFake(time.Date(2026, 11, 24, 9, 15, 0, 0, time.UTC), "boot-1")
}

func tk(id string, st record.TicketState) record.Ticket {
	return record.Ticket{V: 1, Ticket: id, State: st, Staff: "S017", Item: "licence"}
}

// press decides and commits, as the agent does after a durable append.
func press(t *testing.T, b *Binding) record.Disposition {
	t.Helper()
	o := b.Press()
	b.Commit(o)
	return o.Disposition
}

func mustNew(t *testing.T, c sysclock.Clock, snap []byte) *Binding {
	t.Helper()
	b, err := New(window, c, snap)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDispositions(t *testing.T) {
	c := newClock()
	b := mustNew(t, c, nil)
	if got := press(t, b); got != record.NoTicket {
		t.Fatalf("before any ticket: %s, want no_ticket", got)
	}
	b.ApplyTicket(tk("A023", record.Serving))
	o := b.Press()
	if o.Disposition != record.Counted || o.Ticket == nil || o.Ticket.ID != "A023" || o.Ticket.State != record.Serving {
		t.Fatalf("serving: %+v", o)
	}
	b.Commit(o)
	if got := press(t, b); got != record.Repeat {
		t.Fatalf("second press: %s, want repeat", got)
	}
	b.ApplyTicket(tk("A023", record.Done))
	c.Advance(time.Hour)
	if got := press(t, b); got != record.Repeat {
		t.Fatalf("rated and window closed: %s, want repeat (rated comes first)", got)
	}
	b.ApplyTicket(tk("A024", record.Done))
	c.Advance(window + time.Millisecond)
	if got := press(t, b); got != record.Late {
		t.Fatalf("after window: %s, want late", got)
	}
	b.ApplyTicket(record.Ticket{V: 1, State: record.Idle})
	if got := press(t, b); got != record.NoTicket {
		t.Fatalf("idle: %s, want no_ticket", got)
	}
}

func TestPressNotCommittedChangesNothing(t *testing.T) {
	b := mustNew(t, newClock(), nil)
	b.ApplyTicket(tk("A1", record.Serving))
	_ = b.Press() // the append failed: no Commit
	if got := press(t, b); got != record.Counted {
		t.Fatalf("after an uncommitted press: %s, want counted", got)
	}
}

func TestWindowAfterDone(t *testing.T) {
	c := newClock()
	b := mustNew(t, c, nil)
	b.ApplyTicket(tk("A1", record.Serving))
	b.ApplyTicket(tk("A1", record.Done))
	c.Advance(window)
	if !b.WindowOpen() {
		t.Fatal("window closed at exactly its length")
	}
	// A repeated done neither reopens nor extends the window.
	b.ApplyTicket(tk("A1", record.Done))
	c.Advance(time.Millisecond)
	if b.WindowOpen() {
		t.Fatal("repeated done extended the window")
	}
	if got := press(t, b); got != record.Late {
		t.Fatalf("got %s, want late", got)
	}
}

func TestEpisodes(t *testing.T) {
	c := newClock()
	b := mustNew(t, c, nil)
	b.ApplyTicket(tk("A1", record.Serving))
	press(t, b)
	// The retained message re-delivered after a reconnect continues the
	// episode: still rated.
	if b.ApplyTicket(tk("A1", record.Serving)) {
		t.Fatal("re-delivered ticket changed the state")
	}
	if got := press(t, b); got != record.Repeat {
		t.Fatalf("after re-delivery: %s, want repeat", got)
	}
	// The same id after idle is a new episode (ticket ids repeat daily).
	b.ApplyTicket(record.Ticket{V: 1, State: record.Idle})
	b.ApplyTicket(tk("A1", record.Serving))
	if got := press(t, b); got != record.Counted {
		t.Fatalf("same id after idle: %s, want counted", got)
	}
	// A different ticket is a new episode.
	b.ApplyTicket(tk("A2", record.Done))
	if got := press(t, b); got != record.Counted {
		t.Fatalf("next ticket: %s, want counted", got)
	}
}

func TestProjectNoCarried(t *testing.T) {
	b := mustNew(t, newClock(), nil)
	m := tk("A1", record.Serving)
	m.ProjectNo = "620100-2026-000123"
	b.ApplyTicket(m)
	if o := b.Press(); o.Ticket.ProjectNo != m.ProjectNo {
		t.Fatalf("projectNo %q not carried", o.Ticket.ProjectNo)
	}
}

func TestRatedSurvivesRestart(t *testing.T) {
	c := newClock()
	b := mustNew(t, c, nil)
	b.ApplyTicket(tk("A1", record.Serving))
	o := b.Press()
	b.Commit(o)
	// The agent persisted o.State with the record; restart from it.
	b2 := mustNew(t, c, o.State)
	b2.ApplyTicket(tk("A1", record.Serving)) // retained re-delivery
	if got := press(t, b2); got != record.Repeat {
		t.Fatalf("after restart: %s, want repeat", got)
	}
}

func TestWindowAcrossRestart(t *testing.T) {
	cases := []struct {
		name   string
		change func(c *sysclock.Fake)
		open   bool
	}{
		{"same boot", func(c *sysclock.Fake) { c.Advance(10 * time.Second) }, true},
		{"same boot, wall clock stepped back", func(c *sysclock.Fake) {
			c.Advance(10 * time.Second)
			c.SetWall(c.Now().Add(-time.Hour))
		}, true},
		{"reboot, synced clock", func(c *sysclock.Fake) { c.Reboot("boot-2"); c.Advance(10 * time.Second) }, true},
		{"reboot, synced clock, window passed", func(c *sysclock.Fake) { c.Reboot("boot-2"); c.Advance(time.Minute) }, false},
		{"reboot, clock not synced", func(c *sysclock.Fake) { c.Reboot("boot-2"); c.SetSynced(false) }, false},
		{"reboot, clock went backwards", func(c *sysclock.Fake) {
			c.Reboot("boot-2")
			c.SetWall(c.Now().Add(-time.Hour))
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			b := mustNew(t, c, nil)
			b.ApplyTicket(tk("A1", record.Done))
			snap := b.Snapshot()
			tc.change(c)
			b2 := mustNew(t, c, snap)
			if got := b2.WindowOpen(); got != tc.open {
				t.Fatalf("window open = %v, want %v", got, tc.open)
			}
			want := record.Late
			if tc.open {
				want = record.Counted
			}
			if got := press(t, b2); got != want {
				t.Fatalf("press: %s, want %s", got, want)
			}
		})
	}
}

func TestDoneNotSyncedAtOpenClosesAfterReboot(t *testing.T) {
	c := newClock()
	c.SetSynced(false)
	b := mustNew(t, c, nil)
	b.ApplyTicket(tk("A1", record.Done))
	snap := b.Snapshot()
	c.Reboot("boot-2")
	c.SetSynced(true)
	if mustNew(t, c, snap).WindowOpen() {
		t.Fatal("window opened on an unsynchronised clock was trusted after reboot")
	}
}

func TestBadSnapshot(t *testing.T) {
	if _, err := New(window, newClock(), []byte("{")); err == nil {
		t.Fatal("corrupt snapshot accepted")
	}
	if _, err := New(window, newClock(), []byte(`{"v":9}`)); err == nil {
		t.Fatal("unknown snapshot version accepted")
	}
}

func TestStaffKey(t *testing.T) {
	c := newClock()
	b := mustNew(t, c, nil)
	tk1 := b.StaffKey("ep1", "S9")
	if tk1 == nil || tk1.ID != "S-ep1-1" || tk1.Source != record.SourceStaff || tk1.State != record.Done || tk1.Staff != "S9" {
		t.Fatalf("staff key ticket %+v", tk1)
	}
	if !b.WindowOpen() {
		t.Fatal("the staff key did not open the rating window")
	}
	o := b.Press()
	if o.Disposition != record.Counted || o.Ticket == nil || o.Ticket.ID != "S-ep1-1" || o.Ticket.Source != record.SourceStaff {
		t.Fatalf("first press after the staff key: %+v", o)
	}
	b.Commit(o)
	if got := press(t, b); got != record.Repeat {
		t.Fatalf("second press: %s, want repeat", got)
	}
	// A restart keeps the numbering of the epoch; a new epoch starts at 1.
	b = mustNew(t, c, b.Snapshot())
	if tk := b.StaffKey("ep1", ""); tk == nil || tk.ID != "S-ep1-2" {
		t.Fatalf("second staff key of the epoch: %+v", tk)
	}
	c.Advance(window + time.Millisecond)
	if b.WindowOpen() {
		t.Fatal("window still open after binding.rating_window")
	}
	if got := press(t, b); got != record.Late {
		t.Fatalf("after the window: %s, want late", got)
	}
	if tk := b.StaffKey("ep2", ""); tk == nil || tk.ID != "S-ep2-1" {
		t.Fatalf("first staff key of a new epoch: %+v", tk)
	}
}

func TestQueueServingWinsOverStaffKey(t *testing.T) {
	c := newClock()
	b := mustNew(t, c, nil)
	b.ApplyTicket(tk("A023", record.Serving))
	if tk := b.StaffKey("ep1", ""); tk != nil {
		t.Fatalf("staff key while a queue ticket is served made %+v", tk)
	}
	if cur := b.Current(); cur == nil || cur.ID != "A023" {
		t.Fatalf("current %+v, want A023", cur)
	}
	// Once done, the staff key may open a window of its own...
	b.ApplyTicket(tk("A023", record.Done))
	if tk := b.StaffKey("ep1", ""); tk == nil || tk.ID != "S-ep1-1" {
		t.Fatalf("staff key after done: %+v", tk)
	}
	// ...and the queue system's retained message delivered again does not
	// reopen the superseded ticket.
	if b.ApplyTicket(tk("A023", record.Done)) {
		t.Fatal("the retained queue ticket, delivered again, changed the binding")
	}
	if cur := b.Current(); cur == nil || cur.ID != "S-ep1-1" {
		t.Fatalf("current %+v, want the staff ticket", cur)
	}
	// A new queue ticket, even with the staff episode's window open, wins.
	b.ApplyTicket(tk("A024", record.Serving))
	o := b.Press()
	if o.Disposition != record.Counted || o.Ticket.ID != "A024" || o.Ticket.Source != record.SourceQueue {
		t.Fatalf("press on the new queue ticket: %+v", o)
	}
}

func TestOldSnapshotTicketIsQueue(t *testing.T) {
	c := newClock()
	old := []byte(`{"v":1,"next":2,"current":{"n":1,"ticket":{"id":"A1","state":"serving"},"rated":false}}`)
	b := mustNew(t, c, old)
	o := b.Press()
	if o.Disposition != record.Counted || o.Ticket.Source != record.SourceQueue {
		t.Fatalf("press on a ticket persisted before sources: %+v", o)
	}
}
