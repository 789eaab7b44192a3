package web

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/ingest"
	"github.com/hallrate/hallrate/hall/live"
	"github.com/hallrate/hallrate/hall/report"
	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/store/storetest"
	"github.com/hallrate/hallrate/hall/trust"
	"github.com/hallrate/hallrate/internal/pgtest"
	"github.com/hallrate/hallrate/internal/testenv"
	"github.com/hallrate/hallrate/record"
)

var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }

// The live view counts only what the report counts: forged records
// (signed with another key), unsigned records of a device the hall does
// not know, repeats and late presses stand next to real ratings, and
// every tile, chart and ranking of the live view equals the report's
// figures. Issue 12: 30 unsigned 非常不满意 records naming VICTIM-S900 put
// that name first in the live ranking.
func TestLiveFiguresEqualTheReport(t *testing.T) {
	for name, open := range map[string]func(testing.TB) *store.DB{
		"sqlite":   storetest.SQLite,
		"postgres": func(t testing.TB) *store.DB { return storetest.Postgres(t, &pg) },
	} {
		t.Run(name, func(t *testing.T) { liveEqualsReport(t, open(t)) })
	}
}

func liveEqualsReport(t *testing.T, db *store.DB) {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 16, 0, 0, 0, loc)
	pub1, key1, _ := ed25519.GenerateKey(nil)
	pub2, key2, _ := ed25519.GenerateKey(nil)
	_, forger, _ := ed25519.GenerateKey(nil)
	inv, err := trust.ParseInventory(strings.NewReader(
		"w01-a h1 W01 " + record.EncodePublicKey(pub1) + "\nw02-a h1 W02 " + record.EncodePublicKey(pub2) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	in, err := ingest.New(ingest.Config{Prefix: "hallrate/v1", Store: db, Location: loc, Keys: inv, HoldUnverified: true,
		Clock: testenv.ClockFunc(func() time.Time { return now })})
	if err != nil {
		t.Fatal(err)
	}
	prev := map[string]string{}
	seqs := map[string]uint64{}
	send := func(dev, counter, staff string, sat int, disp record.Disposition, at string, key ed25519.PrivateKey) {
		t.Helper()
		seqs[dev]++
		seq := seqs[dev]
		pressed, err := time.ParseInLocation("2006-01-02 15:04", at, loc)
		if err != nil {
			t.Fatal(err)
		}
		p := record.Press{V: 1, ID: record.PressID(dev, "e1", seq), Device: dev, Hall: "h1", Counter: counter, Epoch: "e1",
			Seq: seq, Button: 6 - sat, Label: "b", Satisfaction: sat, Disposition: disp,
			Ticket:    &record.TicketRef{ID: fmt.Sprintf("A%03d", seq), State: record.Done, Staff: staff},
			PressedAt: pressed.Format(time.RFC3339Nano), ClockSynced: true, BootID: "b", UptimeMS: 1, Prev: prev[dev]}
		if key != nil {
			p.Sign(key)
		}
		prev[dev] = p.ChainHash()
		b, _ := json.Marshal(p)
		if err := in.Handle(context.Background(), []ingest.Message{{Topic: "hallrate/v1/h1/" + counter + "/rating", Payload: b}}); err != nil {
			t.Fatal(err)
		}
	}
	// Real ratings, today and earlier this month.
	send("w01-a", "W01", "S1", 5, record.Counted, "2026-11-02 09:00", key1)
	send("w01-a", "W01", "S1", 4, record.Counted, "2026-11-24 09:00", key1)
	send("w01-a", "W01", "S1", 2, record.Counted, "2026-11-24 10:00", key1)
	send("w02-a", "W02", "S2", 5, record.Counted, "2026-11-24 09:30", key2)
	send("w02-a", "W02", "S2", 4, record.Counted, "2026-11-24 11:00", key2)
	// Not ratings: a repeat and a late press, the newest of W02.
	send("w02-a", "W02", "S2", 1, record.Repeat, "2026-11-24 11:01", key2)
	send("w02-a", "W02", "S2", 1, record.Late, "2026-11-24 11:02", key2)
	// Forged: W01's device id signed with another key, all 非常不满意,
	// newer than W01's last rating.
	for i := 0; i < 5; i++ {
		send("w01-a", "W01", "S1", 1, record.Counted, fmt.Sprintf("2026-11-24 12:%02d", i), forger)
	}
	// 30 unsigned 非常不满意 from a device the hall does not know.
	for i := 0; i < 30; i++ {
		send("evil-a", "W09", "VICTIM-S900", 1, record.Counted, fmt.Sprintf("2026-11-24 13:%02d", i), nil)
	}

	srv := New(Config{Store: db, Hall: "h1", Location: loc, Points: report.DefaultPoints(), Clock: testenv.ClockFunc(func() time.Time { return now })})
	d := &dashboard{s: srv, st: db, hub: live.NewHub(testenv.ClockFunc(func() time.Time { return now }))}
	data, err := d.load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v := buildView(data, "h1", loc, "zh")
	rep, err := Report(context.Background(), db, "2026-11", "h1", loc, report.DefaultPoints())
	if err != nil {
		t.Fatal(err)
	}

	// The report, by hand: 5 rated (W01 5 4 2, W02 5 4); 5 forged, 2 not
	// counted, 30 unverified.
	if rep.Total.Rated != 5 || rep.Total.FailedVerification != 5 || rep.Total.Unverified != 30 || rep.Total.Flagged != 2 {
		t.Fatalf("report total %+v", rep.Total)
	}
	// Rankings: the same keys, counts and rates as the report, in its order.
	for _, c := range []struct {
		name string
		live []RankRow
		rep  []report.Row
	}{{"counters", v.Ranking, rep.ByCounter}, {"staff", v.StaffRanking, rep.ByStaff}} {
		var reported []report.Row
		for _, r := range c.rep {
			if r.Rated > 0 {
				reported = append(reported, r)
			}
		}
		if len(c.live) != len(reported) {
			t.Fatalf("%s: live ranking %+v, report %+v", c.name, c.live, reported)
		}
		for i, r := range reported {
			l := c.live[i]
			if l.Key != r.Key || l.Rated != r.Rated || math.Abs(l.Rate-r.NotSatisfiedRate) > 0.0001 {
				t.Errorf("%s #%d: live %+v, report %+v", c.name, i+1, l, r)
			}
		}
	}
	// Month bars: each bar is the report's count.
	bars := map[string]int64{}
	for _, row := range v.MonthCounter.Rows {
		bars[row.Label] = row.Total
	}
	for _, r := range rep.ByCounter {
		if bars[r.Key] != r.Rated {
			t.Errorf("month bar %s: %d, report %d", r.Key, bars[r.Key], r.Rated)
		}
	}
	// Tiles: today's rated ratings, every one of them today in the report.
	tiles := map[string]Tile{}
	for _, tl := range v.Tiles {
		tiles[tl.Counter] = tl
	}
	if w1 := tiles["W01"]; w1.Rated != 2 || w1.Today != [5]int64{0, 1, 0, 1, 0} || w1.GoodRate != 0.5 ||
		w1.Last == nil || w1.Last.Level.Code != 2 || w1.LastPress == nil || w1.LastPress.Kind != "press_held" {
		t.Errorf("W01 tile %+v last %+v last press %+v", w1, w1.Last, w1.LastPress)
	}
	if w2 := tiles["W02"]; w2.Rated != 2 || w2.GoodRate != 1 || w2.Last == nil || w2.Last.Level.Code != 4 ||
		w2.LastPress == nil || w2.LastPress.Kind != "press_late" {
		t.Errorf("W02 tile %+v last %+v last press %+v", w2, w2.Last, w2.LastPress)
	}
	if w9 := tiles["W09"]; w9.Rated != 0 || w9.Last != nil || w9.LastPress == nil || w9.Unverified != 30 || w9.Failed != 0 {
		t.Errorf("W09 tile %+v", w9)
	}
	// The forgeries failed verification: a warning on W01's tile, apart
	// from the unverified (no trusted key) note of W09's.
	if w1 := tiles["W01"]; w1.Failed != 5 || w1.Unverified != 0 {
		t.Errorf("W01 tile: %d failed, %d unverified; want 5 and 0", w1.Failed, w1.Unverified)
	}
	for _, r := range append(v.StaffRanking, v.Ranking...) {
		if r.Key == "VICTIM-S900" || r.Key == "W09" {
			t.Errorf("ranked: %+v", r)
		}
	}
}
