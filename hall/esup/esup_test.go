package esup

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/store/storetest"
	"github.com/hallrate/hallrate/internal/pgtest"
	"github.com/hallrate/hallrate/internal/testenv"
	"github.com/hallrate/hallrate/record"
)

// pg is this test binary's PostgreSQL, started by TestMain.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }

var sh = func() *time.Location { l, _ := time.LoadLocation("Asia/Shanghai"); return l }()

func openSQLite(t testing.TB) *store.DB { return storetest.SQLite(t) }

func openPG(t testing.TB) *store.DB { return storetest.Postgres(t, &pg) }

func storeRatings(t testing.TB, db *store.DB, n int, projectNo bool) {
	t.Helper()
	var rs []store.Rating
	for i := range n {
		p := record.Press{V: 1, ID: record.PressID("w05-a", "e1", uint64(i+1)), Device: "w05-a", Hall: "h1", Counter: "W05",
			Epoch: "e1", Seq: uint64(i + 1), Button: 1, Label: "x", Satisfaction: 5, Disposition: record.Counted,
			Ticket:    &record.TicketRef{ID: fmt.Sprintf("A%04d", i), State: record.Done, Staff: "S9"},
			PressedAt: "2026-11-24T09:15:03.123+08:00", ClockSynced: true}
		if projectNo {
			p.Ticket.ProjectNo = fmt.Sprintf("P%04d", i)
		}
		rs = append(rs, store.Rating{Press: p, Raw: []byte("{}"), PressedMS: time.Date(2026, 11, 24, 9, 15, 3, 123e6, sh).UnixMilli(), ServiceDay: "2026-11-24",
			Verified: true, StoredMS: time.Now().UnixMilli()})
	}
	for len(rs) > 0 {
		k := min(len(rs), 256)
		if _, err := db.SaveBatch(context.Background(), store.Batch{Ratings: rs[:k]}); err != nil {
			t.Fatal(err)
		}
		rs = rs[k:]
	}
}

func cases(n int) []store.Case {
	var cs []store.Case
	for i := range n {
		acc := int64(1795914000000)
		cs = append(cs, store.Case{ProjectNo: fmt.Sprintf("P%04d", i), Hall: "h1", Counter: "W05", Ticket: fmt.Sprintf("A%04d", i),
			Staff: "S1", TaskCode: "T", AcceptedMS: &acc, ServiceDay: "2026-11-24", ReceivedMS: 1})
	}
	return cs
}

func TestChooseCase(t *testing.T) {
	ms := func(v int64) *int64 { return &v }
	cs := []store.Case{
		{ProjectNo: "morning", AcceptedMS: ms(1000), FinishedMS: ms(2000)},
		{ProjectNo: "afternoon", AcceptedMS: ms(5000), FinishedMS: ms(6000)},
	}
	for _, tc := range []struct {
		at   int64
		want string
	}{{1500, "morning"}, {2500, "morning"}, {5500, "afternoon"}, {900, ""}} {
		c, ok := ChooseCase(cs, tc.at, time.Second)
		if got := map[bool]string{true: c.ProjectNo}[ok]; got != tc.want {
			t.Errorf("at %d: %q, want %q", tc.at, got, tc.want)
		}
	}
	if c, ok := ChooseCase(cs[:1], 99999, 0); !ok || c.ProjectNo != "morning" {
		t.Error("a single case is not chosen")
	}
}

// receiver is an e-supervision endpoint that fails its first answers.
type receiver struct {
	mu        sync.Mutex
	failFirst int
	calls     int
	keys      map[string]int
	bodies    map[string]map[string]any
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls <= r.failFirst {
		w.WriteHeader([]int{503, 429, 408}[r.calls%3])
		return
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	key := req.Header.Get("Idempotency-Key")
	r.keys[key]++
	r.bodies[key] = m
	if m["params"] != nil && m["params"].(map[string]any)["projectNo"] == "P0003" {
		io.WriteString(w, `{"custom":{"code":0,"msg":"unknown case"}}`)
		return
	}
	io.WriteString(w, `{"custom":{"code":1}}`)
}

func TestJoinAndDeliver(t *testing.T) {
	for name, open := range map[string]func(testing.TB) *store.DB{"sqlite": openSQLite, "postgres": openPG} {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			// Cases 0..4 arrive before their ratings; case 4 also gets a
			// second counted rating; ratings 5..6 wait for cases that come
			// later; rating 7 never gets one.
			if err := db.SaveCases(ctx, cases(5)); err != nil {
				t.Fatal(err)
			}
			storeRatings(t, db, 8, false)
			now := time.Now()
			j := NewJoiner(JoinConfig{Store: db, Location: sh, AreaCode: "620100", PF: "5", MatchWindow: time.Hour, Sink: SinkHTTP,
				Clock: testenv.ClockFunc(func() time.Time { return now })})
			if err := j.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			if err := db.SaveCases(ctx, cases(7)[5:]); err != nil {
				t.Fatal(err)
			}
			if err := j.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			now = now.Add(2 * time.Hour)
			if err := j.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			if s := j.Stats(); s.Joined != 7 || s.Unmatched != 1 {
				t.Fatalf("join stats %+v", s)
			}
			rcv := &receiver{failFirst: 4, keys: map[string]int{}, bodies: map[string]map[string]any{}}
			srv := httptest.NewServer(rcv)
			defer srv.Close()
			var clock atomic.Int64
			clock.Store(time.Now().UnixMilli())
			d := NewDeliverer(DeliverConfig{Store: db, Owner: "c1", Sink: &HTTPSink{URL: srv.URL, Wrap: "params",
				OKField: "custom.code", OKValue: "1", Client: srv.Client()},
				MinBackoff: time.Second, MaxBackoff: 4 * time.Second,
				Clock: testenv.ClockFunc(func() time.Time { return time.UnixMilli(clock.Load()) }), Jitter: func() float64 { return 0.5 }})
			for i := 0; i < 50; i++ {
				if _, err := d.Once(ctx); err != nil {
					t.Fatal(err)
				}
				clock.Add(5000) // past the longest backoff
			}
			if s := d.Stats(); s.Delivered != 6 || s.Rejected != 1 || s.Retried != 4 {
				t.Fatalf("deliver stats %+v", s)
			}
			for key, n := range rcv.keys {
				if n != 1 {
					t.Errorf("%s answered %d times", key, n)
				}
			}
			body := rcv.bodies["w05-a:e1:1"]["params"].(map[string]any)
			want := map[string]any{"v": 1.0, "ratingId": "w05-a:e1:1", "projectNo": "P0000", "taskCode": "T", "areaCode": "620100",
				"proManager": "S1", "pf": "5", "satisfaction": "5", "assessTime": "2026-11-24 09:15:03", "assessNumber": 1.0,
				"hall": "h1", "counter": "W05", "ticket": "A0000", "device": "w05-a", "verified": true}
			for k, v := range want {
				if body[k] != v {
					t.Errorf("%s = %v, want %v", k, body[k], v)
				}
			}
			rej, err := db.Evaluations(ctx, store.Rejected, 0)
			if err != nil || len(rej) != 1 || rej[0].ProjectNo != "P0003" || rej[0].LastBody == "" {
				t.Fatalf("rejected %+v, %v", rej, err)
			}
			if b, _ := db.Backlog(ctx); b.Undelivered != 0 {
				t.Fatalf("backlog %+v", b)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	d := NewDeliverer(DeliverConfig{MinBackoff: time.Second, MaxBackoff: 8 * time.Second, Jitter: func() float64 { return 1 }})
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 30: 8 * time.Second} {
		if got := d.Backoff(n); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
}

// benchJoinExport joins b.N ratings with their cases and delivers the
// evaluations to a local endpoint.
func benchJoinExport(b *testing.B, db *store.DB) {
	ctx := context.Background()
	storeRatings(b, db, b.N, false)
	if err := db.SaveCases(ctx, cases(b.N)); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer srv.Close()
	j := NewJoiner(JoinConfig{Store: db, Location: sh, MatchWindow: time.Hour, Sink: SinkHTTP})
	d := NewDeliverer(DeliverConfig{Store: db, Owner: "bench", Sink: &HTTPSink{URL: srv.URL, Client: srv.Client()}, Workers: 8, Batch: 200})
	b.ResetTimer()
	if err := j.Pass(ctx); err != nil {
		b.Fatal(err)
	}
	for range b.N + 1 {
		n, err := d.Once(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evaluations/s")
	if s := d.Stats(); s.Delivered != int64(b.N) {
		b.Fatalf("delivered %d of %d", s.Delivered, b.N)
	}
}

func BenchmarkJoinExportSQLite(b *testing.B)   { benchJoinExport(b, openSQLite(b)) }
func BenchmarkJoinExportPostgres(b *testing.B) { benchJoinExport(b, openPG(b)) }
