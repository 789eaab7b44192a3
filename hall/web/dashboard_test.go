package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/ingest"
	"github.com/hallrate/hallrate/hall/live"
	"github.com/hallrate/hallrate/hall/report"
	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/internal/testenv"
	"github.com/hallrate/hallrate/record"
)

const (
	testToken = "s3cret-dashboard-token"
	evilStaff = `<script>alert("x")</script>`
)

// fixture is a hall with a month of ratings, served by the API and the
// dashboard.
type fixture struct {
	t    *testing.T
	db   *store.DB
	in   *ingest.Ingester
	hub  *live.Hub
	srv  *httptest.Server
	loc  *time.Location
	seqs map[string]uint64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 16, 0, 0, 0, loc)
	db, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "c.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{t: t, db: db, hub: live.NewHub(testenv.ClockFunc(func() time.Time { return now })), loc: loc, seqs: map[string]uint64{}}
	f.in, err = ingest.New(ingest.Config{Prefix: "hallrate/v1", Store: db, Location: loc,
		DueDate: func(p time.Time) string { return p.AddDate(0, 0, 9).Format(time.DateOnly) },
		Clock:   testenv.ClockFunc(func() time.Time { return now }),
		OnRating: func(r store.Rating) {
			f.hub.Publish(live.Event{Kind: live.Rating, Hall: r.Hall, Counter: r.Counter, Bad: r.Followup != nil})
		},
		OnStatus: func(s store.StatusUpdate) {
			f.hub.Publish(live.Event{Kind: live.Status, Hall: s.Hall, Counter: s.Counter})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Store: db, Hall: "h1", Location: loc, Token: testToken, Points: report.DefaultPoints(),
		Clock: testenv.ClockFunc(func() time.Time { return now })})
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.AddDashboard(ctx, f.hub); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(s.Handler())
	t.Cleanup(func() { cancel(); f.srv.Close() })
	return f
}

// press stores a record of counter's device pressed at the hall-local
// time at, published on topic counter (another counter's topic makes it
// unverified).
func (f *fixture) press(counter, topic, staff string, sat int, disp record.Disposition, at string, synced bool) {
	f.t.Helper()
	dev := strings.ToLower(counter) + "-a"
	f.seqs[dev]++
	seq := f.seqs[dev]
	pressed, err := time.ParseInLocation("2006-01-02 15:04", at, f.loc)
	if err != nil {
		f.t.Fatal(err)
	}
	p := record.Press{V: 1, ID: record.PressID(dev, "e1", seq), Device: dev, Hall: "h1", Counter: counter, Epoch: "e1",
		Seq: seq, Button: 6 - sat, Label: "b", Satisfaction: sat, Disposition: disp,
		Ticket:    &record.TicketRef{ID: fmt.Sprintf("A%03d", seq), State: record.Done, Staff: staff},
		PressedAt: pressed.Format(time.RFC3339Nano), ClockSynced: synced, BootID: "b", UptimeMS: 1}
	b, _ := json.Marshal(p)
	if err := f.in.Handle(context.Background(), []ingest.Message{{Topic: "hallrate/v1/h1/" + topic + "/rating", Payload: b}}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) status(counter string, online bool, pending int64) {
	f.t.Helper()
	dev := strings.ToLower(counter) + "-a"
	var b []byte
	if online {
		last := f.seqs[dev] + uint64(pending)
		b, _ = json.Marshal(record.Status{V: 1, Online: true, Device: dev, Epoch: "e1", LastSeq: &last, Pending: &pending, At: "2026-11-24T15:00:00+08:00"})
	} else {
		b = record.OfflineStatus(dev)
	}
	if err := f.in.Handle(context.Background(), []ingest.Message{{Topic: "hallrate/v1/h1/" + counter + "/status", Payload: b}}); err != nil {
		f.t.Fatal(err)
	}
}

// month stores the fixture month, November 2026 in Asia/Shanghai; today
// is the 24th. Counted and rated (hand-computed):
//
//	W01 S1:   5 5 4 (2nd)  5 2 (24th)   -> 5 rated: l5=3 l4=1 l2=1, 不满意率 1/5
//	W02 S2:   3 4 (3rd)    1 (24th)     -> 3 rated: l4=1 l3=1 l1=1, 不满意率 2/3 (last place)
//	W03 evil: 4 (24th, clock not synced, on W09's topic: unverified) -> 1 rated
//
// plus a late press of W02 (flagged) and presses on 31 October and 1
// December (outside the month). Totals: 9 rated, l1..l5 = 1 1 1 3 3,
// 好评率 6/9, 差评率 2/9, 不满意率 3/9, score 640/9.
func (f *fixture) month() {
	f.press("W01", "W01", "S1", 5, record.Counted, "2026-10-31 23:30", true)
	f.press("W01", "W01", "S1", 5, record.Counted, "2026-11-02 09:00", true)
	f.press("W01", "W01", "S1", 5, record.Counted, "2026-11-02 10:00", true)
	f.press("W01", "W01", "S1", 4, record.Counted, "2026-11-02 11:00", true)
	f.press("W02", "W02", "S2", 3, record.Counted, "2026-11-03 09:00", true)
	f.press("W02", "W02", "S2", 4, record.Counted, "2026-11-03 10:00", true)
	f.press("W01", "W01", "S1", 5, record.Counted, "2026-11-24 09:00", true)
	f.press("W01", "W01", "S1", 2, record.Counted, "2026-11-24 10:00", true)
	f.press("W02", "W02", "S2", 1, record.Counted, "2026-11-24 09:30", true)
	f.press("W02", "W02", "S2", 5, record.Late, "2026-11-24 09:31", true)
	f.press("W03", "W09", evilStaff, 4, record.Counted, "2026-11-24 11:00", false)
	f.press("W01", "W01", "S1", 1, record.Counted, "2026-12-01 00:10", true)
	f.status("W01", true, 3)
	f.status("W02", true, 0)
	f.status("W02", false, 0)
}

func (f *fixture) get(path string) (int, string) {
	f.t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (f *fixture) post(path, token, body string) (int, string) {
	f.t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReportMatchesHandComputedMonth(t *testing.T) {
	f := newFixture(t)
	f.month()
	code, body := f.get("/api/v1/report?month=2026-11")
	if code != 200 {
		t.Fatalf("report: %d %s", code, body)
	}
	var rep report.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	want := report.Row{Key: "total", Levels: [5]int64{1, 1, 1, 3, 3}, Rated: 9, GoodRate: 0.6667, BadRate: 0.2222,
		NotSatisfiedRate: 0.3333, Score: 71.1111, Flagged: 1}
	if rep.Total != want {
		t.Fatalf("total\n got %+v\nwant %+v", rep.Total, want)
	}
	if len(rep.ByCounter) != 3 || rep.ByCounter[0].Key != "W02" || rep.ByCounter[0].NotSatisfiedRate != 0.6667 ||
		rep.ByCounter[1].Key != "W01" || rep.ByCounter[1].Rated != 5 || rep.ByCounter[2].Key != "W03" {
		t.Fatalf("by counter %+v", rep.ByCounter)
	}
	// The printable page shows the same totals and ranking, last place
	// marked, and links the CSV.
	code, page := f.get("/report?month=2026-11")
	if code != 200 {
		t.Fatalf("report page: %d", code)
	}
	for _, s := range []string{`id="total-rated">9<`, `id="total-good">66.7%<`, `id="total-bad">22.2%<`,
		`id="total-ns">33.3%<`, `id="total-score">71.11<`, `<tr class="last-place" data-key="W02"><td>1</td>`,
		`format=csv`, `好差评月度通报`, `不满意率`} {
		if !strings.Contains(page, s) {
			t.Errorf("report page lacks %q", s)
		}
	}
	// The page rounds the score to two decimals; the data keeps it whole.
	if rep.Total.Score != 71.1111 {
		t.Errorf("report score %v, want 71.1111 unrounded", rep.Total.Score)
	}
	if code, _ := f.get("/report?month=2026-13"); code != 400 {
		t.Errorf("bad month: %d", code)
	}
	code, csv := f.get("/api/v1/report?month=2026-11&format=csv")
	if code != 200 || !strings.Contains(csv, "2026-11,total,total,9,1,1,1,3,3,0.6667,0.2222,0.3333,71.1111,0,0,1") {
		t.Errorf("csv: %d\n%s", code, csv)
	}
}

func TestHallViewTilesAndJSON(t *testing.T) {
	f := newFixture(t)
	f.month()
	code, body := f.get("/api/v1/hall")
	if code != 200 {
		t.Fatalf("hall: %d %s", code, body)
	}
	var v struct {
		Today string `json:"today"`
		Tiles []Tile `json:"tiles"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if v.Today != "2026-11-24" || len(v.Tiles) != 3 {
		t.Fatalf("hall view %s", body)
	}
	w1, w2, w3 := v.Tiles[0], v.Tiles[1], v.Tiles[2]
	if !w1.Online || w1.Pending != 3 || w1.Rated != 2 || w1.GoodRate != 0.5 || w1.Today != [5]int64{0, 1, 0, 0, 1} ||
		w1.Last == nil || w1.Last.Level.Code != 1 || w1.ClockUnsynced {
		t.Errorf("W01 %+v", w1)
	}
	// W02's newest press is late: shown as such, never as its rating.
	if w2.Online || !w2.Known || w2.Rated != 1 || w2.GoodRate != 0 || w2.Last == nil || w2.Last.Disposition != "counted" ||
		w2.Last.Level.Code != 1 || w2.LastPress == nil || w2.LastPress.Kind != "press_late" {
		t.Errorf("W02 %+v", w2)
	}
	if !w3.ClockUnsynced || w3.Unverified != 1 || w3.Ticket == nil || w3.Ticket.Staff != evilStaff || w3.Ticket.Live {
		t.Errorf("W03 %+v", w3)
	}
	// A ticket heard on the ticket topic replaces the last rated one.
	f.hub.SetTicket("h1", "W03", record.Ticket{V: 1, Ticket: "B007", State: record.Serving, Staff: "S9"})
	_, body = f.get("/api/v1/hall")
	if !strings.Contains(body, `"id": "B007"`) || !strings.Contains(body, `"live": true`) {
		t.Errorf("live ticket not shown: %s", body)
	}
}

func TestPagesEscapeAndKeepTheTokenOut(t *testing.T) {
	f := newFixture(t)
	f.month()
	for _, path := range []string{"/", "/?lang=en", "/report?month=2026-11", "/fragment/tiles", "/fragment/charts",
		"/fragment/followups", "/fragment/audit"} {
		code, page := f.get(path)
		if code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
		if strings.Contains(page, "<script>alert") {
			t.Errorf("%s: staff name rendered as HTML", path)
		}
		if strings.Contains(page, testToken) {
			t.Errorf("%s: the token is in the page", path)
		}
	}
	_, page := f.get("/")
	for _, s := range []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", "非常满意", "好评率", "不满意率",
		`id="tile-W01"`, "离线", "时钟未同步", "未验证（无可信密钥）: 1"} {
		if !strings.Contains(page, s) {
			t.Errorf("live view lacks %q", s)
		}
	}
	// W03's record could not be verified (no trusted key): that is not a
	// failed verification, and the tile does not say it is.
	if strings.Contains(page, "记录未通过校验: ") {
		t.Errorf("live view calls an unverified record failed")
	}
	_, en := f.get("/?lang=en")
	for _, s := range []string{"Very satisfied", "Good rate", "Not-satisfied rate", "offline", "clock not synchronised", "unverified (no trusted key): 1"} {
		if !strings.Contains(en, s) {
			t.Errorf("English view lacks %q", s)
		}
	}
	if code, _ := f.get("/fragment/nope"); code != 404 {
		t.Errorf("unknown fragment: %d", code)
	}
	code, css := f.get("/static/hall.css")
	if code != 200 || !strings.Contains(css, "@media print") {
		t.Errorf("css: %d", code)
	}
}

func TestFollowupActionsNeedTheToken(t *testing.T) {
	f := newFixture(t)
	f.month()
	code, body := f.get("/api/v1/followups?state=open")
	var fs struct {
		Followups []FollowupView `json:"followups"`
	}
	if err := json.Unmarshal([]byte(body), &fs); code != 200 || err != nil || len(fs.Followups) != 3 {
		t.Fatalf("open follow-ups: %d %s", code, body)
	}
	// The newest: the 差评 of 1 December.
	id := fs.Followups[0].ID
	path := fmt.Sprintf("/api/v1/followups/%d/close", id)
	if code, body := f.post(path, "", `{"note":"called the citizen"}`); code != 401 {
		t.Fatalf("close without token: %d %s", code, body)
	}
	if code, _ := f.post(path, "wrong", `{"note":"called the citizen"}`); code != 401 {
		t.Fatalf("close with a wrong token: %d", code)
	}
	if code, _ := f.post(path, testToken, `{"note":"  "}`); code != 400 {
		t.Fatalf("close without a note: %d", code)
	}
	// The note follows the field rules: a tab is fine, a line break,
	// NUL, a right-to-left override or invalid UTF-8 is not.
	for _, note := range []string{`"forged\nlevel=ERROR"`, `"a\u0000b"`, `"\u202eabc"`, "\"a\xffb\"", `"` + strings.Repeat("x", 2001) + `"`} {
		if code, body := f.post(path, testToken, `{"note":`+note+`}`); code != 400 {
			t.Errorf("close with note %.40s: %d %s", note, code, body)
		}
	}
	if code, body := f.post(path, testToken, `{"note":"called the citizen\tok"}`); code != 200 {
		t.Fatalf("close: %d %s", code, body)
	}
	if code, _ := f.post(path, testToken, `{"note":"again"}`); code != 409 {
		t.Fatalf("close twice: %d", code)
	}
	_, frag := f.get("/fragment/followups")
	if strings.Count(frag, `class="fu-row`) != 2 || strings.Contains(frag, fmt.Sprintf(`id="fu-%d"`, id)) {
		t.Errorf("closed follow-up still listed:\n%s", frag)
	}
	// Due 9 days after the press on the 24th: 9 days left.
	if !strings.Contains(frag, "2026-12-03") || !strings.Contains(frag, "<td>9</td>") {
		t.Errorf("due date or days left missing:\n%s", frag)
	}
}

// sseEvent reads the next "update" event of a stream.
func sseEvent(t *testing.T, events <-chan update, within time.Duration) update {
	t.Helper()
	select {
	case u, ok := <-events:
		if !ok {
			t.Fatal("event stream ended")
		}
		return u
	case <-time.After(within):
		t.Fatalf("no update within %s", within)
	}
	return update{}
}

func TestEventStreamDeliversChangesWithinASecond(t *testing.T) {
	f := newFixture(t)
	f.month()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan update, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var u update
			if json.Unmarshal([]byte(data), &u) == nil {
				events <- u
			}
		}
	}()
	first := sseEvent(t, events, 5*time.Second)
	for _, s := range []string{"tiles", "charts", "followups", "audit"} {
		if first.Sections[s] == "" {
			t.Fatalf("first update lacks %s", s)
		}
	}
	start := time.Now()
	f.press("W03", "W03", "S3", 5, record.Counted, "2026-11-24 15:59", true)
	u := sseEvent(t, events, time.Second)
	if time.Since(start) > time.Second || len(u.Changed) != 1 || u.Changed[0] != "W03" || u.Sections["charts"] == "" {
		t.Fatalf("update after a rating: %v changed %v", time.Since(start), u.Changed)
	}
	if !strings.Contains(u.Sections["tiles"], `id="tile-W03" data-counter="W03" data-state="off" data-rated="2"`) {
		t.Errorf("tile not updated:\n%s", u.Sections["tiles"])
	}
	f.status("W01", false, 0)
	u = sseEvent(t, events, time.Second)
	if !strings.Contains(u.Sections["tiles"], `id="tile-W01" data-counter="W01" data-state="off"`) {
		t.Errorf("W01 not offline:\n%s", u.Sections["tiles"])
	}
	if f.hub.Subscribers() != 1 {
		t.Errorf("%d subscribers", f.hub.Subscribers())
	}
}
