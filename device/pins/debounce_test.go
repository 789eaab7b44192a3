package pins

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 9, 15, 0, 0, time.UTC)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// step is one reading fed to a debouncer: at t0+at, level active, with or
// without a reported edge.
type step struct {
	at     time.Duration
	active bool
	edge   bool
}

func run(d *debouncer, steps []step) []Event {
	var evs []Event
	for _, s := range steps {
		evs = append(evs, d.observe(t0.Add(s.at), s.active, s.edge)...)
	}
	return evs
}

func kinds(evs []Event) []EventKind {
	var ks []EventKind
	for _, e := range evs {
		ks = append(ks, e.Kind)
	}
	return ks
}

func equalKinds(a, b []EventKind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDebouncer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start bool
		steps []step
		want  []EventKind
	}{
		{"clean press and release", false, []step{
			{ms(0), true, true}, {ms(30), true, false},
			{ms(200), false, true}, {ms(230), false, false},
		}, []EventKind{Pressed, Released}},
		{"not yet held for the debounce time", false, []step{
			{ms(0), true, true}, {ms(29), true, false},
		}, nil},
		{"bouncing press is one press", false, []step{
			{ms(0), true, true}, {ms(1), false, true}, {ms(2), true, true}, {ms(4), false, true},
			{ms(5), true, true}, {ms(20), true, false}, {ms(35), true, false}, {ms(100), true, false},
		}, []EventKind{Pressed}},
		{"glitch shorter than debounce", false, []step{
			{ms(0), true, true}, {ms(10), false, true}, {ms(40), false, false}, {ms(500), false, false},
		}, []EventKind{Glitch}},
		{"edge pair with no level change restarts the wait", false, []step{
			{ms(0), true, true}, {ms(20), true, true}, {ms(40), true, false}, {ms(50), true, false},
		}, []EventKind{Pressed}},
		{"lost edge caught by the level", false, []step{
			{ms(0), true, false}, {ms(30), true, false},
		}, []EventKind{Pressed}},
		{"held past the stuck limit is reported once", false, []step{
			{ms(0), true, true}, {ms(30), true, false}, {ms(5029), true, false},
			{ms(5030), true, false}, {ms(9000), true, false}, {ms(20000), true, false},
		}, []EventKind{Pressed, Stuck}},
		{"released after stuck, pressed again", false, []step{
			{ms(0), true, true}, {ms(30), true, false}, {ms(6000), true, false},
			{ms(7000), false, true}, {ms(7030), false, false},
			{ms(8000), true, true}, {ms(8030), true, false},
		}, []EventKind{Pressed, Stuck, Released, Pressed}},
		{"held at start is no press", true, []step{
			{ms(100), true, false}, {ms(4000), true, false},
		}, nil},
		{"held at start then stuck", true, []step{
			{ms(5000), true, false}, {ms(6000), true, false},
		}, []EventKind{Stuck}},
		{"held at start, released, pressed", true, []step{
			{ms(100), false, true}, {ms(130), false, false}, {ms(300), true, true}, {ms(330), true, false},
		}, []EventKind{Released, Pressed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDebouncer(ms(30), 5*time.Second, tc.start, t0)
			if got := kinds(run(d, tc.steps)); !equalKinds(got, tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDebouncerMeasuresBounce(t *testing.T) {
	d := newDebouncer(ms(30), 5*time.Second, false, t0)
	evs := run(d, []step{
		{ms(0), true, true}, {ms(1), false, true}, {ms(3), true, true}, {ms(33), true, false},
	})
	if len(evs) != 1 || evs[0].Kind != Pressed {
		t.Fatalf("events %v, want one press", kinds(evs))
	}
	if e := evs[0]; e.Edges != 3 || e.Bounce != ms(3) || !e.At.Equal(t0.Add(ms(33))) {
		t.Errorf("press %+v, want 3 edges, 3ms bounce, at +33ms", e)
	}
}

func TestDebouncerNext(t *testing.T) {
	d := newDebouncer(ms(30), 5*time.Second, false, t0)
	if _, ok := d.next(); ok {
		t.Error("idle released button asks for a wake-up")
	}
	d.observe(t0.Add(ms(10)), true, true)
	if at, ok := d.next(); !ok || !at.Equal(t0.Add(ms(40))) {
		t.Errorf("during a burst next = %v %v, want +40ms", at, ok)
	}
	d.observe(t0.Add(ms(40)), true, false)
	if at, ok := d.next(); !ok || !at.Equal(t0.Add(ms(5040))) {
		t.Errorf("while held next = %v %v, want +5.04s", at, ok)
	}
	d.observe(t0.Add(ms(5040)), true, false)
	if _, ok := d.next(); ok {
		t.Error("a button reported stuck still asks for a wake-up")
	}
}

func TestEventKindString(t *testing.T) {
	for k, want := range map[EventKind]string{Pressed: "pressed", Released: "released", Glitch: "glitch", Stuck: "stuck", 0: "unknown", 9: "unknown"} {
		if got := k.String(); got != want {
			t.Errorf("EventKind(%d) = %q, want %q", int(k), got, want)
		}
	}
}
